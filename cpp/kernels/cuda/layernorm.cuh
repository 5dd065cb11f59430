// layernorm.cuh — CUDA twin of cpu/layernorm.h (LayerNorm over the last dimension C).
// Same arguments and meaning; pointers are device pointers; T ∈ {float, __nv_bfloat16}, float math.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16

namespace paratrain::cuda {

// out[N,C] = (in − mean) · rstd · w + b;  mean[N], rstd[N] saved (in T, as the CPU kernel does).
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* w, const T* b, int N, int C, T eps);

// din[N,C] (= or +=) ∂L/∂in;  dw[C] += Σ dout·x̂;  db[C] += Σ dout.  Deterministic: no atomics.
template <typename T>
void layernorm_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w, const T* mean, const T* rstd,
                        int N, int C, bool accumulate_din);

}  // namespace paratrain::cuda
