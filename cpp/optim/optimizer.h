// optimizer.h — LAMB (NVLAMB, with an apex-compatible variant) and AdamW as passes over the flat
// parameter/gradient buffers; the moments m and v share the parameter layout.
#pragma once
#include <cstdint>  // int64_t
#include <vector>

#include "../comm/communicator.h"  // Communicator
#include "../model/params.h"       // ParamLayout

namespace paratrain {

enum class OptimizerKind { Lamb, AdamW };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::Lamb;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f, weight_decay = 0.01f;
  // LAMB: false = NVLAMB (g/‖g‖ always, ε inside the sqrt);
  //       true  = apex FusedLAMB (g·max_norm/‖g‖ only when ‖g‖ > max_norm, ε outside the sqrt).
  bool apex = false;
  float max_grad_norm = 1.0f;  // AdamW and apex-LAMB clipping threshold; 0 disables clipping
};

struct OptimizerResult {
  double grad_norm = 0;  // global ‖g‖₂ before any normalisation or clipping
  bool skipped = false;  // non-finite gradients: parameters and moments left untouched
};

class Optimizer {
 public:
  Optimizer(const OptimizerConfig& cfg, const ParamLayout& layout);
  // One update with learning rate lr. `grads` is consumed (used as scratch for the update). The
  // gradients must already be averaged over data-parallel replicas; `tp` is the tensor-parallel
  // group, over which split tensors' norms are summed so every norm equals the TP = 1 one.
  OptimizerResult step(float* params, float* grads, float lr, Communicator& tp);

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const OptimizerConfig& config() const { return cfg_; }

 private:
  OptimizerConfig cfg_;
  const ParamLayout& layout_;
  std::vector<float> m_, v_;
  std::vector<double> norms_, split_norms_;  // LAMB: per-tensor ‖w‖², ‖u‖² (kept to avoid reallocating)
  int64_t step_ = 0;
};

}  // namespace paratrain
