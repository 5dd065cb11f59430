// gelu.h — GELU in its two forms: exact erf (BERT) and the tanh approximation (GPT-2's "gelu_new").
#pragma once
#include "fast_math.h"  // fast_erf, fast_exp, fast_tanh

#include "../gelu_form.h"  // GeluForm

namespace paratrain::cpu {

template <typename T>
inline T gelu_erf(T x) {
  return T(0.5) * x * (T(1) + fast_erf(x * T(0.70710678118654752)));
}
template <typename T>
inline T gelu_erf_derivative(T x) {
  const T cdf = T(0.5) * (T(1) + fast_erf(x * T(0.70710678118654752)));
  const T pdf = fast_exp(T(-0.5) * x * x) * T(0.39894228040143268);  // 1/sqrt(2pi)
  return cdf + x * pdf;
}

constexpr double kSqrt2OverPi = 0.79788456080286536;
template <typename T>
inline T gelu_tanh(T x) {
  return T(0.5) * x * (T(1) + fast_tanh(T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x)));
}
template <typename T>
inline T gelu_tanh_derivative(T x) {
  const T k = T(kSqrt2OverPi);
  const T t = fast_tanh(k * (x + T(0.044715) * x * x * x));
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * T(0.044715) * x * x);
}

// out[n] = gelu(in[n]). One loop per form, so each vectorises.
template <typename T>
void gelu_forward(T* out, const T* in, long n, GeluForm form) {
  if (form == GeluForm::Erf) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) out[i] = gelu_erf(in[i]);
  } else {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) out[i] = gelu_tanh(in[i]);
  }
}

// din[n] = dout[n] · gelu'(in[n])   (din may alias dout)
template <typename T>
void gelu_backward(T* din, const T* dout, const T* in, long n, GeluForm form) {
  if (form == GeluForm::Erf) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) din[i] = dout[i] * gelu_erf_derivative(in[i]);
  } else {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) din[i] = dout[i] * gelu_tanh_derivative(in[i]);
  }
}

}  // namespace paratrain::cpu
