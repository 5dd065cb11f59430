// optimizer.h — LAMB (NVLAMB, with an apex-compatible variant) and AdamW as passes over the flat
// parameter/gradient buffers; the moments m and v share the parameter layout. One interface, one
// implementation per backend: optimizer_cpu.cpp (the reference) and optimizer_cuda.cpp (the
// multi-tensor kernels of cpp/kernels/cuda/optimizer.cu); make_optimizer() returns the build's.
#pragma once
#include <cstdint>  // int64_t
#include <memory>   // std::unique_ptr
#include <vector>

#include "../comm/communicator.h"  // Communicator
#include "../kernels/backend.h"    // kernels::Buffer
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

// The per-step scalars both backends compute on the host, in the same way.
struct StepScalars {
  float bc1 = 1, bc2 = 1;  // 1 − β1^t, 1 − β2^t
  float grad_scale = 1;    // NVLAMB 1/‖g‖; apex-LAMB and AdamW clipping factor; else 1
  // 1 / loss scale, applied first: g·unscale is the unscaled gradient exactly (powers of two), and
  // kept apart from grad_scale so that a tiny clipping factor cannot turn their product subnormal.
  float unscale = 1;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update with learning rate lr. `grads` may be consumed (the CPU uses it as scratch). The
  // gradients must already be averaged over data-parallel replicas; `tp` is the tensor-parallel
  // group, over which split tensors' norms are summed so every norm equals the TP = 1 one.
  // `unscale`: 1 / the loss scale the gradients were computed with (a power of two, so unscaling is
  // exact); the norm is reported, and the update made, for the unscaled gradients.
  virtual OptimizerResult step(float* params, float* grads, float lr, Communicator& tp, float unscale) = 0;

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }
  kernels::Buffer<float>& m() { return m_; }  // kernel memory, the parameter layout
  kernels::Buffer<float>& v() { return v_; }
  const OptimizerConfig& config() const { return cfg_; }

 protected:
  Optimizer(const OptimizerConfig& cfg, const ParamLayout& layout);
  // Counts the update and returns its scalars (call after the norm, when the step is not skipped).
  // grad_norm is the unscaled one.
  StepScalars begin_update(double grad_norm, float unscale);
  OptimizerConfig cfg_;
  const ParamLayout& layout_;
  kernels::Buffer<float> m_, v_;
  int64_t step_ = 0;
};

// This build's optimizer (CPU or CUDA).
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const ParamLayout& layout);

}  // namespace paratrain
