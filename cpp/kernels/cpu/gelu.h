// gelu.h — GELU in its two forms: exact erf (BERT) and the tanh approximation (GPT-2's "gelu_new").
#pragma once
#include "fast_math.h"  // fast_erf, fast_exp, fast_tanh

namespace paratrain::cpu {

enum class GeluForm { Erf, Tanh };

template <typename T>
inline T gelu_value(T x, GeluForm form) {
  if (form == GeluForm::Erf) return T(0.5) * x * (T(1) + fast_erf(x * T(0.70710678118654752)));
  const T k = T(0.79788456080286536);  // sqrt(2/pi)
  return T(0.5) * x * (T(1) + fast_tanh(k * (x + T(0.044715) * x * x * x)));
}

template <typename T>
inline T gelu_derivative(T x, GeluForm form) {
  if (form == GeluForm::Erf) {
    const T cdf = T(0.5) * (T(1) + fast_erf(x * T(0.70710678118654752)));
    const T pdf = fast_exp(T(-0.5) * x * x) * T(0.39894228040143268);  // 1/sqrt(2pi)
    return cdf + x * pdf;
  }
  const T k = T(0.79788456080286536);
  const T inner = k * (x + T(0.044715) * x * x * x);
  const T t = fast_tanh(inner);
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * T(0.044715) * x * x);
}

// out[n] = gelu(in[n])
template <typename T>
void gelu_forward(T* out, const T* in, long n, GeluForm form) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) out[i] = gelu_value(in[i], form);
}

// din[n] = dout[n] · gelu'(in[n])   (din may alias dout)
template <typename T>
void gelu_backward(T* din, const T* dout, const T* in, long n, GeluForm form) {
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) din[i] = dout[i] * gelu_derivative(in[i], form);
}

}  // namespace paratrain::cpu
