// fast_math.h — exp and erf for float that the compiler can vectorise (libm's scalar calls cannot
// be), used in the loops that touch every logit and every MLP activation. The double overloads
// are libm itself, so double instantiations (the finite-difference tests) stay exact.
#pragma once
#include <algorithm>  // std::min, std::max
#include <cmath>      // std::floor, std::exp, std::erf, std::copysign, std::fabs
#include <cstdint>    // int32_t
#include <cstring>    // std::memcpy

// PARATRAIN_HD marks what the CUDA kernels call too (the sampling noise must match the CPU's).
#ifndef PARATRAIN_HD
#if defined(__CUDACC__)
#define PARATRAIN_HD __host__ __device__
#else
#define PARATRAIN_HD
#endif
#endif

namespace paratrain::cpu {

// e^x with Cephes' range reduction and degree-6 polynomial: relative error below 3e-7 on
// [-87, 88]; inputs are clamped there (e^-87.3 ≈ 1e-38, which a softmax rounds to 0 anyway).
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.3f), 88.7f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double fast_exp(double x) { return std::exp(x); }

// erf(x) by Abramowitz & Stegun 7.1.26: absolute error 1.5e-7 in exact arithmetic, below 1e-6 in float.
inline float fast_erf(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  return std::copysign(1.0f - poly * fast_exp(-a * a), x);
}
inline double fast_erf(double x) { return std::erf(x); }

// ln x for positive normal floats: x = m·2^e with m in [√½, √2), ln m by Cephes' degree-9
// polynomial in m − 1; relative error below 2e-7 (absolute 1e-7 near x = 1). Branch-free enough to
// vectorise (Gumbel noise draws two logarithms per vocabulary entry).
PARATRAIN_HD inline float fast_log(float x) {
#if defined(__CUDA_ARCH__)
  // The same operations, each rounded on its own: nvcc would otherwise fuse a·b + c into FMAs and
  // the GPU's Gumbel noise would differ from the host's (compiled without FMA contraction) in the
  // last bit. Kept apart from the host text so that the host build computes exactly what it did.
  int32_t bits = __float_as_int(x);
  float e = static_cast<float>(((bits >> 23) & 0xff) - 127);
  float m = __int_as_float((bits & 0x007fffff) | 0x3f800000);
  const bool high = m > 1.41421356f;
  m = high ? 0.5f * m : m;  // exact
  e = high ? e + 1.0f : e;  // exact
  const float f = m - 1.0f, z = __fmul_rn(f, f);
  float y = 7.0376836292e-2f;
  y = __fsub_rn(__fmul_rn(y, f), 1.1514610310e-1f);
  y = __fadd_rn(__fmul_rn(y, f), 1.1676998740e-1f);
  y = __fsub_rn(__fmul_rn(y, f), 1.2420140846e-1f);
  y = __fadd_rn(__fmul_rn(y, f), 1.4249322787e-1f);
  y = __fsub_rn(__fmul_rn(y, f), 1.6668057665e-1f);
  y = __fadd_rn(__fmul_rn(y, f), 2.0000714765e-1f);
  y = __fsub_rn(__fmul_rn(y, f), 2.4999993993e-1f);
  y = __fadd_rn(__fmul_rn(y, f), 3.3333331174e-1f);
  y = __fsub_rn(__fsub_rn(__fmul_rn(__fmul_rn(y, f), z), __fmul_rn(2.12194440e-4f, e)), __fmul_rn(0.5f, z));
  return __fadd_rn(__fadd_rn(f, y), __fmul_rn(0.693359375f, e));
#else
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  float e = static_cast<float>(((bits >> 23) & 0xff) - 127);
  bits = (bits & 0x007fffff) | 0x3f800000;  // the mantissa as a float in [1, 2)
  float m;
  std::memcpy(&m, &bits, sizeof m);
  const bool high = m > 1.41421356f;
  m = high ? 0.5f * m : m;
  e = high ? e + 1.0f : e;
  const float f = m - 1.0f, z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z - 2.12194440e-4f * e - 0.5f * z;
  return f + y + 0.693359375f * e;
#endif
}
inline double fast_log(double x) { return std::log(x); }

// tanh(x) = 1 − 2/(e^{2x} + 1), exact at the extremes through fast_exp's clamping.
inline float fast_tanh(float x) { return 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f); }
inline double fast_tanh(double x) { return std::tanh(x); }

}  // namespace paratrain::cpu
