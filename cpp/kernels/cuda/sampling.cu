// sampling.cu — twin of cpu/sampling.h. One block per row: each thread scans its columns in
// increasing order keeping the first maximum, then the block picks the largest value and, among
// equal values, the lowest id — an exact total order, so the result does not depend on the order
// of the reduction and equals the CPU's sequential scan.
#include "../../common/rng.h"   // rng_open_uniform (__host__ __device__)
#include "../cpu/fast_math.h"   // fast_log (__host__ __device__)
#include "common.cuh"           // current_stream, CUDA_CHECK, to_float, from_float
#include "sampling.cuh"

namespace paratrain::cuda {

namespace {

constexpr int kThreads = 256;
constexpr long kMaxRowBlocks = 1L << 20;

struct Choice {
  float value;
  int id;
};

// The better of two candidates: the larger value; on a tie the lower id (−1, no column, never
// ties with a real candidate: its value is −∞ and `>` never accepts −∞).
__device__ __forceinline__ Choice better(Choice a, Choice b) {
  if (b.value > a.value || (b.value == a.value && b.id >= 0 && (a.id < 0 || b.id < a.id))) return b;
  return a;
}

__device__ __forceinline__ Choice warp_better(Choice c) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Choice other;
    other.value = __shfl_xor_sync(0xffffffffu, c.value, o);
    other.id = __shfl_xor_sync(0xffffffffu, c.id, o);
    c = better(c, other);
  }
  return c;
}

template <typename T>
__global__ void gumbel_argmax_kernel(const T* __restrict__ logits, long rows, int V, int valid, int v0,
                                     const uint64_t* __restrict__ keys, const uint64_t* __restrict__ offsets,
                                     T* __restrict__ best, int* __restrict__ index) {
  __shared__ Choice s_warp[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (long r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * V;
    const uint64_t key = keys[r], offset = offsets[r];
    Choice c{-INFINITY, -1};
    for (int v = threadIdx.x; v < valid; v += blockDim.x) {
      const float u = rng_open_uniform(key, offset + static_cast<uint64_t>(v0 + v));
      const float noise = cpu::fast_log(-cpu::fast_log(u));
      const float y = __fsub_rn(to_float(x[v]), noise);  // the CPU's x − (float)noise
      if (y > c.value) c = {y, v0 + v};
    }
    c = warp_better(c);
    __syncthreads();  // s_warp of the previous row is consumed
    if (lane == 0) s_warp[warp] = c;
    __syncthreads();
    if (warp == 0) {
      c = lane < warps ? s_warp[lane] : Choice{-INFINITY, -1};
      c = warp_better(c);
      if (lane == 0) {
        best[r] = from_float<T>(c.value);
        index[r] = c.id;
      }
    }
  }
}

}  // namespace

template <typename T>
void gumbel_argmax_rows(const T* logits, long rows, int V, int valid, int v0, const uint64_t* keys,
                        const uint64_t* offsets, T* best, int* index) {
  if (rows <= 0) return;
  const unsigned grid = static_cast<unsigned>(rows < kMaxRowBlocks ? rows : kMaxRowBlocks);
  gumbel_argmax_kernel<<<grid, kThreads, 0, current_stream()>>>(logits, rows, V, valid, v0, keys, offsets, best,
                                                                index);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T) \
  template void gumbel_argmax_rows<T>(const T*, long, int, int, int, const uint64_t*, const uint64_t*, T*, int*);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

}  // namespace paratrain::cuda
