// elementwise.cuh — CUDA twins of cpu/gelu.h, cpu/dropout.h and the tanh pair of cpu/rows.h.
// Same arguments and meaning; pointers are device pointers; T ∈ {float, __nv_bfloat16}, float math.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16
#include <cstdint>      // uint64_t

#include "../gelu_form.h"  // GeluForm (one definition for both kernel sets)

namespace paratrain::cuda {


// out[n] = gelu(in[n])
template <typename T>
void gelu_forward(T* out, const T* in, long n, GeluForm form);
// din[n] = dout[n] · gelu'(in[n])   (din may alias dout)
template <typename T>
void gelu_backward(T* din, const T* dout, const T* in, long n, GeluForm form);

// Inverted dropout from the counter-based stream of common/rng.h: the same mask as the CPU kernel,
// bit for bit. out may alias in; p = 0 copies.
template <typename T>
void dropout_forward(T* out, const T* in, long n, float p, uint64_t key);
// out[n] = residual[n] + dropout(in[n])
template <typename T>
void residual_dropout_forward(T* out, const T* residual, const T* in, long n, float p, uint64_t key);
// din[n] = dout[n] · mask[n]   (din may alias dout)
template <typename T>
void dropout_backward(T* din, const T* dout, long n, float p, uint64_t key);

template <typename T>
void tanh_forward(T* out, const T* in, long n);
// din = dout · (1 − out²)
template <typename T>
void tanh_backward(T* din, const T* dout, const T* out, long n);

}  // namespace paratrain::cuda
