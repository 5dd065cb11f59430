// optimizer.cu — twin of the element-wise parts of cpp/optim/optimizer.cpp. Work is cut into
// fixed chunks of kOptimChunk elements of one tensor; a block visits chunks in a grid-stride loop,
// so one launch covers every tensor. Norms: one double partial per chunk, then one block per
// tensor adds its chunks' partials in a fixed order — reproducible run to run, no atomics.
#include "common.cuh"  // current_stream, CUDA_CHECK, block_sum, to_float, from_float
#include "optimizer.cuh"

namespace paratrain::cuda {

int64_t plan_optim_chunks(OptimTensor* tensors, int count) {
  int64_t chunks = 0;
  for (int t = 0; t < count; t++) {
    tensors[t].first_chunk = static_cast<int32_t>(chunks);
    chunks += (tensors[t].numel + kOptimChunk - 1) / kOptimChunk;
  }
  return chunks;
}

namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 4096;

unsigned chunk_grid(int64_t chunks) { return static_cast<unsigned>(chunks < kMaxBlocks ? chunks : kMaxBlocks); }

// The tensor holding chunk k: the last t with first_chunk ≤ k (binary search; tensors with no
// elements own no chunk and are skipped naturally).
__device__ __forceinline__ int tensor_of_chunk(const OptimTensor* __restrict__ tensors, int count, int64_t k) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tensors[mid].first_chunk <= k) lo = mid; else hi = mid - 1;
  }
  while (lo + 1 < count && tensors[lo + 1].first_chunk <= k) lo++;  // skip empty tensors sharing first_chunk
  return lo;
}

struct ChunkRange {
  int t;
  int64_t begin, end;  // flat indices
};
__device__ __forceinline__ ChunkRange chunk_range(const OptimTensor* __restrict__ tensors, int count, int64_t k) {
  const int t = tensor_of_chunk(tensors, count, k);
  const OptimTensor& d = tensors[t];
  const int64_t local = (k - d.first_chunk) * kOptimChunk;
  const int64_t len = d.numel - local < kOptimChunk ? d.numel - local : kOptimChunk;
  return {t, d.offset + local, d.offset + local + len};
}

// LAMB's direction; pass 1 and pass 2 call this one function on the same inputs, so the u whose
// norm pass 1 measured is the u pass 2 applies.
__device__ __forceinline__ float lamb_direction(float m, float v, float w, float wd, const OptimStepArgs& a) {
  const float mhat = m / a.bc1, vhat = v / a.bc2;
  return (a.apex ? mhat / (sqrtf(vhat) + a.eps) : mhat / sqrtf(vhat + a.eps)) + wd * w;
}

template <typename G>
__global__ void sum_squares_kernel(const G* __restrict__ grads, const OptimTensor* __restrict__ tensors, int count,
                                   int64_t chunks, double* __restrict__ partial) {
  __shared__ double s_red[32];
  for (int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const ChunkRange c = chunk_range(tensors, count, k);
    double acc = 0;
    for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) {
      const double g = to_float(grads[i]);
      acc += g * g;
    }
    acc = block_sum(acc, s_red);
    if (threadIdx.x == 0) partial[k] = acc;
  }
}

// out[t] (and out[count + t] when two) = Σ of tensor t's chunk partials (partial[k], partial[chunks + k]).
__global__ void reduce_partials_kernel(const double* __restrict__ partial, const OptimTensor* __restrict__ tensors,
                                       int count, int64_t chunks, bool two, double* __restrict__ out) {
  __shared__ double s_red[32];
  for (int t = blockIdx.x; t < count; t += gridDim.x) {
    const int64_t k0 = tensors[t].first_chunk;
    const int64_t k1 = k0 + (tensors[t].numel + kOptimChunk - 1) / kOptimChunk;
    double a = 0, b = 0;
    for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) {
      a += partial[k];
      if (two) b += partial[chunks + k];
    }
    a = block_sum(a, s_red);
    if (two) b = block_sum(b, s_red);
    if (threadIdx.x == 0) {
      out[t] = a;
      if (two) out[count + t] = b;
    }
  }
}

template <typename G>
__global__ void adamw_kernel(float* __restrict__ params, G* __restrict__ params_copy, float* __restrict__ m,
                             float* __restrict__ v, const G* __restrict__ grads,
                             const OptimTensor* __restrict__ tensors, int count, int64_t chunks, OptimStepArgs a) {
  for (int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const ChunkRange c = chunk_range(tensors, count, k);
    const float wd = tensors[c.t].decay ? a.weight_decay : 0.0f;
    for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) {
      const float g = to_float(grads[i]) * a.unscale * a.grad_scale;
      const float mi = a.beta1 * m[i] + (1 - a.beta1) * g;
      const float vi = a.beta2 * v[i] + (1 - a.beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      const float update = (mi / a.bc1) / (sqrtf(vi / a.bc2) + a.eps);
      const float w = params[i] * (1 - a.lr * wd) - a.lr * update;
      params[i] = w;
      if (params_copy) params_copy[i] = from_float<G>(w);
    }
  }
}

template <typename G>
__global__ void lamb_moments_kernel(float* __restrict__ m, float* __restrict__ v, const float* __restrict__ params,
                                    const G* __restrict__ grads, const OptimTensor* __restrict__ tensors, int count,
                                    int64_t chunks, OptimStepArgs a, double* __restrict__ partial) {
  __shared__ double s_red[32];
  for (int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const ChunkRange c = chunk_range(tensors, count, k);
    const float wd = tensors[c.t].decay ? a.weight_decay : 0.0f;
    double w_sq = 0, u_sq = 0;
    for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) {
      const float g = to_float(grads[i]) * a.unscale * a.grad_scale;
      const float mi = a.beta1 * m[i] + (1 - a.beta1) * g;
      const float vi = a.beta2 * v[i] + (1 - a.beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      const float w = params[i];
      const float u = lamb_direction(mi, vi, w, wd, a);
      w_sq += static_cast<double>(w) * w;
      u_sq += static_cast<double>(u) * u;
    }
    w_sq = block_sum(w_sq, s_red);
    u_sq = block_sum(u_sq, s_red);
    if (threadIdx.x == 0) {
      partial[k] = w_sq;
      partial[chunks + k] = u_sq;
    }
  }
}

template <typename G>
__global__ void lamb_update_kernel(float* __restrict__ params, G* __restrict__ params_copy, const float* __restrict__ m,
                                   const float* __restrict__ v, const double* __restrict__ norms,
                                   const OptimTensor* __restrict__ tensors, int count, int64_t chunks,
                                   OptimStepArgs a) {
  for (int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const ChunkRange c = chunk_range(tensors, count, k);
    const float wd = tensors[c.t].decay ? a.weight_decay : 0.0f;
    const double w_norm = sqrt(norms[c.t]), u_norm = sqrt(norms[count + c.t]);
    const float ratio = (w_norm > 0 && u_norm > 0) ? static_cast<float>(w_norm / u_norm) : 1.0f;
    const float step = a.lr * ratio;
    for (int64_t i = c.begin + threadIdx.x; i < c.end; i += blockDim.x) {
      const float w = params[i];
      const float nw = w - step * lamb_direction(m[i], v[i], w, wd, a);
      params[i] = nw;
      if (params_copy) params_copy[i] = from_float<G>(nw);
    }
  }
}

void reduce_partials(const double* partial, const OptimTensor* tensors, int count, int64_t chunks, bool two,
                     double* out) {
  reduce_partials_kernel<<<count, kBlock, 0, current_stream()>>>(partial, tensors, count, chunks, two, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename G>
void multi_tensor_sum_squares(double* sq, const G* grads, const OptimTensor* tensors, int count, int64_t chunks,
                              double* scratch) {
  if (count <= 0) return;
  if (chunks > 0) {
    sum_squares_kernel<<<chunk_grid(chunks), kBlock, 0, current_stream()>>>(grads, tensors, count, chunks, scratch);
    CUDA_CHECK_LAUNCH();
  }
  reduce_partials(scratch, tensors, count, chunks, false, sq);
}

template <typename G>
void adamw_update(float* params, G* params_copy, float* m, float* v, const G* grads, const OptimTensor* tensors,
                  int count, int64_t chunks, const OptimStepArgs& a) {
  if (count <= 0 || chunks <= 0) return;
  adamw_kernel<<<chunk_grid(chunks), kBlock, 0, current_stream()>>>(params, params_copy, m, v, grads, tensors, count,
                                                                    chunks, a);
  CUDA_CHECK_LAUNCH();
}

template <typename G>
void lamb_moments(float* m, float* v, double* norms, const float* params, const G* grads, const OptimTensor* tensors,
                  int count, int64_t chunks, const OptimStepArgs& a, double* scratch) {
  if (count <= 0) return;
  if (chunks > 0) {
    lamb_moments_kernel<<<chunk_grid(chunks), kBlock, 0, current_stream()>>>(m, v, params, grads, tensors, count,
                                                                             chunks, a, scratch);
    CUDA_CHECK_LAUNCH();
  }
  reduce_partials(scratch, tensors, count, chunks, true, norms);
}

template <typename G>
void lamb_update(float* params, G* params_copy, const float* m, const float* v, const double* norms,
                 const OptimTensor* tensors, int count, int64_t chunks, const OptimStepArgs& a) {
  if (count <= 0 || chunks <= 0) return;
  lamb_update_kernel<<<chunk_grid(chunks), kBlock, 0, current_stream()>>>(params, params_copy, m, v, norms, tensors,
                                                                          count, chunks, a);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(G)                                                                                              \
  template void multi_tensor_sum_squares<G>(double*, const G*, const OptimTensor*, int, int64_t, double*);          \
  template void adamw_update<G>(float*, G*, float*, float*, const G*, const OptimTensor*, int, int64_t,             \
                                const OptimStepArgs&);                                                              \
  template void lamb_moments<G>(float*, float*, double*, const float*, const G*, const OptimTensor*, int, int64_t,   \
                                const OptimStepArgs&, double*);                                                     \
  template void lamb_update<G>(float*, G*, const float*, const float*, const double*, const OptimTensor*, int,       \
                               int64_t, const OptimStepArgs&);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

}  // namespace paratrain::cuda
