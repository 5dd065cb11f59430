// optimizer.cuh — CUDA twin of the update rules in cpp/optim/optimizer.cpp: AdamW and LAMB
// (NVLAMB and apex forms) as multi-tensor passes over the flat buffers — one launch covers every
// tensor. fp32 master weights and moments; gradients G ∈ {float, __nv_bfloat16}; an optional
// low-precision copy of the updated weights (params_copy, null to skip) for mixed precision.
// The host keeps what optimizer.cpp does on the host: the global gradient norm from
// multi_tensor_sum_squares, the bias corrections, the gradient pre-scale, skipping non-finite
// steps, and the tensor-parallel all-reduce of LAMB's per-tensor norms between the two passes.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16
#include <cstdint>      // int64_t, int32_t

namespace paratrain::cuda {

// One tensor of the flat layout (ParamInfo: offset, numel, decay). first_chunk is filled in by
// plan_optim_chunks; the array lives in device memory during the kernels.
struct OptimTensor {
  int64_t offset;
  int64_t numel;
  int32_t decay;        // 1: weight-decayed (ParamInfo::decay)
  int32_t first_chunk;  // index of the tensor's first kOptimChunk-element chunk
};
constexpr int64_t kOptimChunk = 16384;  // elements per thread block visit; partial sums are per chunk

// Host: fills first_chunk for tensors[0..count) and returns the total number of chunks.
int64_t plan_optim_chunks(OptimTensor* tensors, int count);
// Device scratch (doubles) the norm passes need: two partial sums per chunk.
inline int64_t optim_scratch_doubles(int64_t chunks) { return 2 * chunks; }

// Scalars as optimizer.cpp computes them on the host for this step.
struct OptimStepArgs {
  float lr, beta1, beta2, eps, weight_decay;
  float bc1, bc2;     // 1 − β1^t, 1 − β2^t
  float grad_scale;   // NVLAMB 1/‖g‖; apex-LAMB and AdamW clipping factor; else 1
  float unscale;      // 1 / loss scale, applied before grad_scale
  bool apex;          // LAMB only: ε outside the sqrt
};

// sq[t] = Σ g² over tensor t (double, fixed summation order). scratch: optim_scratch_doubles(chunks).
template <typename G>
void multi_tensor_sum_squares(double* sq, const G* grads, const OptimTensor* tensors, int count, int64_t chunks,
                              double* scratch);

// PyTorch AdamW: w ← w·(1 − lr·wd) − lr·m̂/(√v̂ + ε), g pre-scaled by grad_scale.
template <typename G>
void adamw_update(float* params, G* params_copy, float* m, float* v, const G* grads, const OptimTensor* tensors,
                  int count, int64_t chunks, const OptimStepArgs& a);

// LAMB pass 1: moments, and norms[t] = ‖w_t‖², norms[count + t] = ‖u_t‖² with
// u = m̂/√(v̂+ε) + wd·w (apex: m̂/(√v̂+ε) + wd·w). Gradients are only read (u is recomputed in pass 2).
template <typename G>
void lamb_moments(float* m, float* v, double* norms, const float* params, const G* grads, const OptimTensor* tensors,
                  int count, int64_t chunks, const OptimStepArgs& a, double* scratch);

// LAMB pass 2: r = ‖w‖/‖u‖ (1 if either is 0); w ← w − lr·r·u.
template <typename G>
void lamb_update(float* params, G* params_copy, const float* m, const float* v, const double* norms,
                 const OptimTensor* tensors, int count, int64_t chunks, const OptimStepArgs& a);

}  // namespace paratrain::cuda
