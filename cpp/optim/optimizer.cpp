// optimizer.cpp — the update rules. Everything is per element except the norms: the global
// gradient norm (LAMB's pre-normalisation, AdamW's clipping) and LAMB's per-tensor trust ratio.
#include "optimizer.h"

#include <cmath>  // std::sqrt, std::pow, std::isfinite

namespace paratrain {

Optimizer::Optimizer(const OptimizerConfig& cfg, const ParamLayout& layout)
    : cfg_(cfg), layout_(layout), m_(layout.total(), 0.0f), v_(layout.total(), 0.0f) {}

static double sum_squares(const float* x, int64_t n) {
  double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]) * x[i];
  return s;
}

OptimizerResult Optimizer::step(float* params, float* grads, float lr, Communicator& group) {
  OptimizerResult res;
  double sq = sum_squares(grads, layout_.total());
  group.all_reduce_sum(&sq, 1);  // TP/DP: every rank sees the global norm
  res.grad_norm = std::sqrt(sq);
  if (!std::isfinite(res.grad_norm)) {
    res.skipped = true;
    return res;
  }
  step_ += 1;
  const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  const float bc1 = 1.0f - static_cast<float>(std::pow(b1, static_cast<double>(step_)));
  const float bc2 = 1.0f - static_cast<float>(std::pow(b2, static_cast<double>(step_)));

  // Gradient pre-scaling: NVLAMB divides by the global norm; apex-LAMB and AdamW clip.
  float g_scale = 1.0f;
  if (cfg_.kind == OptimizerKind::Lamb && !cfg_.apex) {
    if (res.grad_norm > 0) g_scale = static_cast<float>(1.0 / res.grad_norm);
  } else if (cfg_.max_grad_norm > 0 && res.grad_norm > cfg_.max_grad_norm) {
    g_scale = static_cast<float>(cfg_.max_grad_norm / res.grad_norm);
  }

  for (const ParamInfo& p : layout_.params()) {
    float* w = params + p.offset;
    float* g = grads + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
    const float wd = p.decay ? cfg_.weight_decay : 0.0f;
    const int64_t n = p.numel;
    if (cfg_.kind == OptimizerKind::AdamW) {
      // PyTorch AdamW: w ← w·(1 − lr·wd) − lr·m̂/(√v̂ + ε)
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) {
        const float gi = g[i] * g_scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const float update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
        w[i] = w[i] * (1 - lr * wd) - lr * update;
      }
      continue;
    }
    // LAMB: u = m̂/√(v̂+ε) + wd·w (apex: m̂/(√v̂+ε) + wd·w); r = ‖w‖/‖u‖ (1 if either is 0); w ← w − lr·r·u.
    double w_sq = 0, u_sq = 0;
    const bool apex = cfg_.apex;
#pragma omp parallel for schedule(static) reduction(+ : w_sq, u_sq)
    for (int64_t i = 0; i < n; i++) {
      const float gi = g[i] * g_scale;
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const float mhat = m[i] / bc1, vhat = v[i] / bc2;
      const float u = (apex ? mhat / (std::sqrt(vhat) + eps) : mhat / std::sqrt(vhat + eps)) + wd * w[i];
      g[i] = u;  // the gradient is spent: keep u in its place
      w_sq += static_cast<double>(w[i]) * w[i];
      u_sq += static_cast<double>(u) * u;
    }
    // TP: a split tensor's ‖w‖² and ‖u‖² are summed over the tensor-parallel group here.
    const double w_norm = std::sqrt(w_sq), u_norm = std::sqrt(u_sq);
    const float ratio = (w_norm > 0 && u_norm > 0) ? static_cast<float>(w_norm / u_norm) : 1.0f;
    const float step_size = lr * ratio;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) w[i] -= step_size * g[i];
  }
  return res;
}

}  // namespace paratrain
