// optimizer.cpp — what both backends' optimizers share: the moments and the per-step scalars.
#include "optimizer.h"

#include <cmath>  // std::pow

namespace paratrain {

Optimizer::Optimizer(const OptimizerConfig& cfg, const ParamLayout& layout) : cfg_(cfg), layout_(layout) {
  m_.assign(static_cast<size_t>(layout.total()), 0.0f);
  v_.assign(static_cast<size_t>(layout.total()), 0.0f);
}

StepScalars Optimizer::begin_update(double grad_norm, float unscale) {
  step_ += 1;
  StepScalars s;
  s.bc1 = 1.0f - static_cast<float>(std::pow(cfg_.beta1, static_cast<double>(step_)));
  s.bc2 = 1.0f - static_cast<float>(std::pow(cfg_.beta2, static_cast<double>(step_)));
  // Gradient pre-scaling: NVLAMB divides by the global norm; apex-LAMB and AdamW clip.
  if (cfg_.kind == OptimizerKind::Lamb && !cfg_.apex) {
    if (grad_norm > 0) s.grad_scale = static_cast<float>(1.0 / grad_norm);
  } else if (cfg_.max_grad_norm > 0 && grad_norm > cfg_.max_grad_norm) {
    s.grad_scale = static_cast<float>(cfg_.max_grad_norm / grad_norm);
  }
  s.unscale = unscale;
  return s;
}

}  // namespace paratrain
