// optimizer_cpu.cpp — the update rules on the CPU (the reference for optimizer_cuda.cpp).
// Everything is per element except the norms: the global gradient norm (LAMB's pre-normalisation,
// AdamW's clipping) and LAMB's per-tensor trust ratio.
#include <cmath>  // std::sqrt, std::isfinite

#include "optimizer.h"

namespace paratrain {

namespace {

double sum_squares(const float* x, int64_t n) {
  double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]) * x[i];
  return s;
}

// ‖g‖² of this rank's gradients: tensor-parallel shards are summed over the group, replicated
// tensors (identical on every TP rank) are counted once.
double global_grad_sq(const ParamLayout& layout, const float* grads, Communicator& tp) {
  double split = 0, replicated = 0;
  for (const ParamInfo& p : layout.params())
    (p.split_dim >= 0 ? split : replicated) += sum_squares(grads + p.offset, p.numel);
  if (tp.size() > 1) tp.all_reduce_sum(&split, 1);
  return split + replicated;
}

class CpuOptimizer final : public Optimizer {
 public:
  CpuOptimizer(const OptimizerConfig& cfg, const ParamLayout& layout) : Optimizer(cfg, layout) {}
  OptimizerResult step(float* params, float* grads, float lr, Communicator& tp, float unscale) override;

 private:
  std::vector<double> norms_, split_norms_;  // LAMB: per-tensor ‖w‖², ‖u‖² (kept to avoid reallocating)
};

OptimizerResult CpuOptimizer::step(float* params, float* grads, float lr, Communicator& tp, float unscale) {
  OptimizerResult res;
  res.grad_norm = std::sqrt(global_grad_sq(layout_, grads, tp)) * static_cast<double>(unscale);
  if (!std::isfinite(res.grad_norm)) {
    res.skipped = true;
    return res;
  }
  const StepScalars sc = begin_update(res.grad_norm, unscale);
  const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  const float bc1 = sc.bc1, bc2 = sc.bc2, g_scale = sc.grad_scale, unscale_g = sc.unscale;

  const auto& params_info = layout_.params();
  if (cfg_.kind == OptimizerKind::AdamW) {
    for (const ParamInfo& p : params_info) {
      float* w = params + p.offset;
      float* g = grads + p.offset;
      float* m = m_.data() + p.offset;
      float* v = v_.data() + p.offset;
      const float wd = p.decay ? cfg_.weight_decay : 0.0f;
      // PyTorch AdamW: w ← w·(1 − lr·wd) − lr·m̂/(√v̂ + ε)
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < p.numel; i++) {
        const float gi = g[i] * unscale_g * g_scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const float update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
        w[i] = w[i] * (1 - lr * wd) - lr * update;
      }
    }
    return res;
  }

  // LAMB pass 1: moments and u = m̂/√(v̂+ε) + wd·w (apex: m̂/(√v̂+ε) + wd·w) in place of the spent
  // gradient, with each tensor's ‖w‖² and ‖u‖².
  const size_t count = params_info.size();
  norms_.assign(2 * count, 0.0);  // [w² per tensor | u² per tensor]
  const bool apex = cfg_.apex;
  for (size_t t = 0; t < count; t++) {
    const ParamInfo& p = params_info[t];
    const float* w = params + p.offset;
    float* g = grads + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
    const float wd = p.decay ? cfg_.weight_decay : 0.0f;
    double w_sq = 0, u_sq = 0;
#pragma omp parallel for schedule(static) reduction(+ : w_sq, u_sq)
    for (int64_t i = 0; i < p.numel; i++) {
      const float gi = g[i] * unscale_g * g_scale;
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const float mhat = m[i] / bc1, vhat = v[i] / bc2;
      const float u = (apex ? mhat / (std::sqrt(vhat) + eps) : mhat / std::sqrt(vhat + eps)) + wd * w[i];
      g[i] = u;
      w_sq += static_cast<double>(w[i]) * w[i];
      u_sq += static_cast<double>(u) * u;
    }
    norms_[t] = w_sq;
    norms_[count + t] = u_sq;
  }
  // A split tensor's norms are over the whole tensor: sum its shards' squares over the TP group
  // (one all-reduce for all tensors; replicated ones contribute zeros elsewhere and are restored).
  if (tp.size() > 1) {
    split_norms_.assign(2 * count, 0.0);
    for (size_t t = 0; t < count; t++)
      if (params_info[t].split_dim >= 0) {
        split_norms_[t] = norms_[t];
        split_norms_[count + t] = norms_[count + t];
      }
    tp.all_reduce_sum(split_norms_.data(), split_norms_.size());
    for (size_t t = 0; t < count; t++)
      if (params_info[t].split_dim >= 0) {
        norms_[t] = split_norms_[t];
        norms_[count + t] = split_norms_[count + t];
      }
  }
  // Pass 2: r = ‖w‖/‖u‖ (1 if either is 0); w ← w − lr·r·u.
  for (size_t t = 0; t < count; t++) {
    const ParamInfo& p = params_info[t];
    float* w = params + p.offset;
    const float* u = grads + p.offset;
    const double w_norm = std::sqrt(norms_[t]), u_norm = std::sqrt(norms_[count + t]);
    const float ratio = (w_norm > 0 && u_norm > 0) ? static_cast<float>(w_norm / u_norm) : 1.0f;
    const float step_size = lr * ratio;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < p.numel; i++) w[i] -= step_size * u[i];
  }
  return res;
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const ParamLayout& layout) {
  return std::make_unique<CpuOptimizer>(cfg, layout);
}

}  // namespace paratrain
