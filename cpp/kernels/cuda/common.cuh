// common.cuh — what every CUDA kernel file shares: the current stream, CUDA_CHECK, float/bf16
// conversion, 128-bit packed loads/stores and deterministic warp/block reductions.
// The host part (stream, CUDA_CHECK) compiles in plain C++ too, so engine code can include it.
#pragma once
#include <cuda_bf16.h>         // __nv_bfloat16, __bfloat162float, __float2bfloat16
#include <cuda_runtime_api.h>  // cudaStream_t, cudaError_t, cudaGetErrorString
#include <cstdint>             // uintptr_t

#include "../../common/error.h"  // paratrain::Error

namespace paratrain::cuda {

// Every kernel wrapper launches on the calling thread's current stream (default: the legacy
// default stream). The engine sets it once per worker thread.
cudaStream_t current_stream();
void set_current_stream(cudaStream_t stream);

// Throws paratrain::Error("ERR_CUDA", "<file>:<line>: <what>: <cudaGetErrorString>").
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line);

// How many elements of T make one 128-bit load.
template <typename T>
constexpr int kPack = 16 / static_cast<int>(sizeof(T));

// True when every pointer is 16-byte aligned and n is a whole number of packs: the vectorised path.
inline bool can_pack(long n, int pack) { return n % pack == 0; }
template <typename... Ptrs>
inline bool aligned16(const Ptrs*... ptrs) {
  return ((reinterpret_cast<uintptr_t>(ptrs) % 16 == 0) && ...);
}

// A grid for a grid-stride loop over n work items; capped because each thread loops anyway.
inline unsigned grid_for(long n, int block, long max_blocks = 8192) {
  long g = (n + block - 1) / block;
  if (g > max_blocks) g = max_blocks;
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

}  // namespace paratrain::cuda

#define CUDA_CHECK(expr)                                                                       \
  do {                                                                                         \
    const cudaError_t paratrain_cuda_err_ = (expr);                                            \
    if (paratrain_cuda_err_ != cudaSuccess)                                                    \
      ::paratrain::cuda::throw_cuda_error(paratrain_cuda_err_, #expr, __FILE__, __LINE__);     \
  } while (0)
// After a kernel launch: reports bad launch configurations at once (asynchronous faults surface
// at the next synchronising call).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#if defined(__CUDACC__)
namespace paratrain::cuda {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

// 16 bytes of T, loaded or stored with one instruction.
template <typename T>
struct alignas(16) Pack {
  T v[kPack<T>];
};

// Loads V consecutive elements as floats: one 128-bit load when V is a full pack (the caller
// guarantees 16-byte alignment), element by element when V = 1.
template <int V, typename T>
__device__ __forceinline__ void load_floats(float (&dst)[V], const T* __restrict__ src) {
  if constexpr (V == 1) {
    dst[0] = to_float(src[0]);
  } else {
    static_assert(V == kPack<T>, "V must be 1 or a full 128-bit pack");
    const Pack<T> p = *reinterpret_cast<const Pack<T>*>(src);
#pragma unroll
    for (int k = 0; k < V; k++) dst[k] = to_float(p.v[k]);
  }
}
template <int V, typename T>
__device__ __forceinline__ void store_floats(T* __restrict__ dst, const float (&src)[V]) {
  if constexpr (V == 1) {
    dst[0] = from_float<T>(src[0]);
  } else {
    static_assert(V == kPack<T>, "V must be 1 or a full 128-bit pack");
    Pack<T> p;
#pragma unroll
    for (int k = 0; k < V; k++) p.v[k] = from_float<T>(src[k]);
    *reinterpret_cast<Pack<T>*>(dst) = p;
  }
}

// Butterfly reductions: every lane ends with the same value, computed in a fixed order.
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ double warp_sum(double x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Block-wide sum (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result. `shared`
// holds 32 values of Acc. Fixed order, so the result is the same on every run.
template <typename Acc>
__device__ __forceinline__ Acc block_sum(Acc x, Acc* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < warps ? shared[lane] : Acc(0);
  return warp_sum(x);
}
__device__ __forceinline__ float block_max(float x, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_max(x);
  __syncthreads();
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < warps ? shared[lane] : -INFINITY;
  return warp_max(x);
}

}  // namespace paratrain::cuda

// Explicit instantiation for both element types of a kernel wrapper template.
#define PARATRAIN_INSTANTIATE_FLOAT_BF16(MACRO) \
  MACRO(float)                                  \
  MACRO(__nv_bfloat16)
#endif
