// dropout.h — inverted dropout whose mask is regenerated from a counter-based stream, so backward
// needs no stored mask and a replayed step draws the same mask.
#pragma once
#include <cstdint>  // uint64_t

#include "../../common/rng.h"  // rng_uniform

namespace paratrain::cpu {

// Element i of stream `key` is kept when its uniform draw is ≥ p; kept values scale by 1/(1−p).
template <typename T>
inline T dropout_scale(uint64_t key, uint64_t i, float p) {
  return rng_uniform(key, i) >= p ? T(1) / T(1 - p) : T(0);
}

// out[n] = in[n] · mask[n]  (out may alias in; p = 0 copies)
template <typename T>
void dropout_forward(T* out, const T* in, long n, float p, uint64_t key) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) out[i] = p > 0 ? in[i] * dropout_scale<T>(key, i, p) : in[i];
}

// out[n] = residual[n] + dropout(in[n])  — the residual add of every transformer sub-layer.
template <typename T>
void residual_dropout_forward(T* out, const T* residual, const T* in, long n, float p, uint64_t key) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) out[i] = residual[i] + (p > 0 ? in[i] * dropout_scale<T>(key, i, p) : in[i]);
}

// din[n] = dout[n] · mask[n]  (din may alias dout)
template <typename T>
void dropout_backward(T* din, const T* dout, long n, float p, uint64_t key) {
  dropout_forward(din, dout, n, p, key);
}

}  // namespace paratrain::cpu
