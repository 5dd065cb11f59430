// elementwise.cu — twins of cpu/gelu.h, cpu/dropout.h and tanh_* of cpu/rows.h: grid-stride maps
// over n elements, a 128-bit pack per thread step when n and the pointers allow it.
// The CPU kernels use fast_math.h approximations of exp/erf (≤ 1e-6 absolute); these use CUDA's
// erff/expf/tanhf, well inside the fp32 tolerance. Dropout uses the same rng_uniform, so masks match.
#include "../../common/rng.h"  // rng_uniform (host and device)
#include "common.cuh"          // current_stream, CUDA_CHECK, load_floats, store_floats
#include "elementwise.cuh"

namespace paratrain::cuda {

namespace {

constexpr int kBlock = 256;

// Applies f(i, k, values...) → float to element i for i in [0, n), V consecutive elements per step.
// Each functor gets the global element index so that dropout can key its stream on it.
template <int V, typename T, typename F>
__global__ void map1_kernel(T* out, const T* a, long n, F f) {
  const long stride = static_cast<long>(gridDim.x) * blockDim.x * V;
  for (long i = (static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x) * V; i < n; i += stride) {
    float xa[V], y[V];
    load_floats<V>(xa, a + i);
#pragma unroll
    for (int k = 0; k < V; k++) y[k] = f(i + k, xa[k]);
    store_floats<V>(out + i, y);
  }
}
template <int V, typename T, typename F>
__global__ void map2_kernel(T* out, const T* a, const T* b, long n, F f) {
  const long stride = static_cast<long>(gridDim.x) * blockDim.x * V;
  for (long i = (static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x) * V; i < n; i += stride) {
    float xa[V], xb[V], y[V];
    load_floats<V>(xa, a + i);
    load_floats<V>(xb, b + i);
#pragma unroll
    for (int k = 0; k < V; k++) y[k] = f(i + k, xa[k], xb[k]);
    store_floats<V>(out + i, y);
  }
}

// out may alias an input (gelu_backward, dropout in place), so none of these pointers is __restrict__.
template <typename T, typename F>
void launch_map1(T* out, const T* a, long n, F f) {
  if (n <= 0) return;
  constexpr int P = kPack<T>;
  if (can_pack(n, P) && aligned16(out, a))
    map1_kernel<P><<<grid_for(n / P, kBlock), kBlock, 0, current_stream()>>>(out, a, n, f);
  else
    map1_kernel<1><<<grid_for(n, kBlock), kBlock, 0, current_stream()>>>(out, a, n, f);
  CUDA_CHECK_LAUNCH();
}
template <typename T, typename F>
void launch_map2(T* out, const T* a, const T* b, long n, F f) {
  if (n <= 0) return;
  constexpr int P = kPack<T>;
  if (can_pack(n, P) && aligned16(out, a, b))
    map2_kernel<P><<<grid_for(n / P, kBlock), kBlock, 0, current_stream()>>>(out, a, b, n, f);
  else
    map2_kernel<1><<<grid_for(n, kBlock), kBlock, 0, current_stream()>>>(out, a, b, n, f);
  CUDA_CHECK_LAUNCH();
}

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;

struct GeluErf {
  __device__ float operator()(long, float x) const { return 0.5f * x * (1.0f + erff(x * kInvSqrt2)); }
};
struct GeluTanh {
  __device__ float operator()(long, float x) const {
    return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
  }
};
struct GeluErfBackward {  // (dout, in)
  __device__ float operator()(long, float dy, float x) const {
    const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
    const float pdf = expf(-0.5f * x * x) * kInvSqrt2Pi;
    return dy * (cdf + x * pdf);
  }
};
struct GeluTanhBackward {  // (dout, in)
  __device__ float operator()(long, float dy, float x) const {
    const float t = tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x));
    return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x));
  }
};

// The CPU's dropout_scale<float>: kept when the draw is ≥ p, scaled by 1/(1−p) (IEEE division on
// both sides, so the scaled values match too).
struct Dropout {
  uint64_t key;
  float p;
  __device__ float operator()(long i, float x) const {
    if (!(p > 0)) return x;
    return x * (rng_uniform(key, static_cast<uint64_t>(i)) >= p ? 1.0f / (1.0f - p) : 0.0f);
  }
};
struct ResidualDropout {  // (residual, in)
  uint64_t key;
  float p;
  __device__ float operator()(long i, float r, float x) const { return r + Dropout{key, p}(i, x); }
};

struct Tanh {
  __device__ float operator()(long, float x) const { return tanhf(x); }
};
struct TanhBackward {  // (dout, out)
  __device__ float operator()(long, float dy, float y) const { return dy * (1.0f - y * y); }
};

}  // namespace

template <typename T>
void gelu_forward(T* out, const T* in, long n, GeluForm form) {
  if (form == GeluForm::Erf)
    launch_map1(out, in, n, GeluErf{});
  else
    launch_map1(out, in, n, GeluTanh{});
}

template <typename T>
void gelu_backward(T* din, const T* dout, const T* in, long n, GeluForm form) {
  if (form == GeluForm::Erf)
    launch_map2(din, dout, in, n, GeluErfBackward{});
  else
    launch_map2(din, dout, in, n, GeluTanhBackward{});
}

template <typename T>
void dropout_forward(T* out, const T* in, long n, float p, uint64_t key) {
  launch_map1(out, in, n, Dropout{key, p});
}

template <typename T>
void residual_dropout_forward(T* out, const T* residual, const T* in, long n, float p, uint64_t key) {
  launch_map2(out, residual, in, n, ResidualDropout{key, p});
}

template <typename T>
void dropout_backward(T* din, const T* dout, long n, float p, uint64_t key) {
  dropout_forward(din, dout, n, p, key);
}

template <typename T>
void tanh_forward(T* out, const T* in, long n) {
  launch_map1(out, in, n, Tanh{});
}

template <typename T>
void tanh_backward(T* din, const T* dout, const T* out, long n) {
  launch_map2(din, dout, out, n, TanhBackward{});
}

#define INSTANTIATE(T)                                                                     \
  template void gelu_forward<T>(T*, const T*, long, GeluForm);                             \
  template void gelu_backward<T>(T*, const T*, const T*, long, GeluForm);                  \
  template void dropout_forward<T>(T*, const T*, long, float, uint64_t);                   \
  template void residual_dropout_forward<T>(T*, const T*, const T*, long, float, uint64_t); \
  template void dropout_backward<T>(T*, const T*, long, float, uint64_t);                  \
  template void tanh_forward<T>(T*, const T*, long);                                       \
  template void tanh_backward<T>(T*, const T*, const T*, long);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

}  // namespace paratrain::cuda
