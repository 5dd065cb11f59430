// tensor_ops.cu — twin of cpu/tensor_ops.h. Elementwise maps are grid-stride loops; the two
// reductions write per-block partials (a block's threads walk fixed indices, block_sum has a fixed
// order) and one block adds the partials in block order: bitwise reproducible, no atomics.
#include "common.cuh"  // current_stream, CUDA_CHECK, grid_for, block_sum, to_float, from_float
#include "tensor_ops.cuh"

namespace paratrain::cuda {

namespace {

constexpr int kBlock = 256;

// A grid-stride loop index over [0, n).
#define PARATRAIN_GRID_LOOP(i, n)                                                          \
  for (long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<long>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void fill_kernel(T* __restrict__ x, long n, T value) {
  PARATRAIN_GRID_LOOP(i, n) x[i] = value;
}

template <typename T>
__global__ void add_into_kernel(T* __restrict__ dst, const T* __restrict__ src, long n) {
  PARATRAIN_GRID_LOOP(i, n) dst[i] = from_float<T>(to_float(dst[i]) + to_float(src[i]));
}

template <typename T>
__global__ void add_bias_rows_kernel(T* __restrict__ out, const T* __restrict__ b, long N, int O) {
  PARATRAIN_GRID_LOOP(i, N * O) out[i] = from_float<T>(to_float(out[i]) + to_float(b[i % O]));
}

__global__ void strided_rows_kernel(int* __restrict__ rows, int count, int stride) {
  PARATRAIN_GRID_LOOP(i, count) rows[i] = static_cast<int>(i) * stride;
}

template <typename T>
__global__ void split_pairs_kernel(T* __restrict__ first, T* __restrict__ second, const T* __restrict__ pairs,
                                   long n) {
  PARATRAIN_GRID_LOOP(i, n) {
    first[i] = pairs[2 * i];
    second[i] = pairs[2 * i + 1];
  }
}

template <typename T>
__global__ void join_pairs_kernel(T* __restrict__ pairs, const T* __restrict__ first, const T* __restrict__ second,
                                  long n) {
  PARATRAIN_GRID_LOOP(i, n) {
    pairs[2 * i] = first[i];
    pairs[2 * i + 1] = second[i];
  }
}

unsigned reduce_grid(long n) { return grid_for(n, kBlock, kReduceBlocks); }

// partials[blockIdx] = this block's Σ diff²; grad as the CPU writes it. pred and grad may alias.
template <typename T>
__global__ void squared_error_kernel(const T* pred, const float* __restrict__ target, long n, T grad_scale, T* grad,
                                     double* __restrict__ partials) {
  __shared__ double s_red[32];
  double sum = 0;
  PARATRAIN_GRID_LOOP(i, n) {
    const double diff = static_cast<double>(to_float(pred[i])) - target[i];
    sum += diff * diff;
    // static_cast<T>(2.0 * diff) * grad_scale: the double rounded to T, then one product in T.
    const float twice = to_float(from_float<T>(static_cast<float>(2.0 * diff)));
    grad[i] = from_float<T>(twice * to_float(grad_scale));
  }
  sum = block_sum(sum, s_red);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// partials[blockIdx] = this block's hits; a thread per row, the first maximum as std::max_element.
template <typename T>
__global__ void argmax_hits_kernel(const T* __restrict__ logits, const int* __restrict__ labels, long rows, int C,
                                   int ignore_index, double* __restrict__ partials) {
  __shared__ double s_red[32];
  double hits = 0;
  PARATRAIN_GRID_LOOP(r, rows) {
    const int label = labels[r];
    if (label == ignore_index) continue;
    const T* row = logits + r * C;
    int arg = 0;
    float top = C > 0 ? to_float(row[0]) : 0.0f;
    for (int c = 1; c < C; c++) {
      const float x = to_float(row[c]);
      if (top < x) {  // std::max_element keeps the first of equal maxima
        top = x;
        arg = c;
      }
    }
    hits += C > 0 && arg == label ? 1.0 : 0.0;
  }
  hits = block_sum(hits, s_red);
  if (threadIdx.x == 0) partials[blockIdx.x] = hits;
}

// out[0] = Σ partials[0, count) in index order per thread, then block_sum: fixed order.
__global__ void sum_partials_kernel(const double* __restrict__ partials, long count, double* __restrict__ out) {
  __shared__ double s_red[32];
  double s = 0;
  for (long i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = block_sum(s, s_red);
  if (threadIdx.x == 0) out[0] = s;
}

double sum_partials_and_fetch(double* scratch, long count) {
  sum_partials_kernel<<<1, kBlock, 0, current_stream()>>>(scratch, count, scratch + kReduceBlocks);
  CUDA_CHECK_LAUNCH();
  double host = 0;
  CUDA_CHECK(cudaMemcpyAsync(&host, scratch + kReduceBlocks, sizeof host, cudaMemcpyDeviceToHost, current_stream()));
  CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  return host;
}

__global__ void apply_samples_kernel(int* __restrict__ tokens, uint8_t* __restrict__ replaced,
                                     const int* __restrict__ rows, const int* __restrict__ draws,
                                     const int* __restrict__ labels, int M) {
  PARATRAIN_GRID_LOOP(m, M) {
    tokens[rows[m]] = draws[m];
    replaced[rows[m]] = draws[m] != labels[m];
  }
}

template <typename T>
__global__ void scale_kernel(T* __restrict__ x, long n, float factor) {
  PARATRAIN_GRID_LOOP(i, n) x[i] = from_float<T>(to_float(x[i]) * factor);
}

template <typename T>
__global__ void sample_choice_encode_kernel(T* __restrict__ choice, const T* __restrict__ best,
                                            const int* __restrict__ index, long rows) {
  PARATRAIN_GRID_LOOP(r, rows) {
    choice[r] = choice[r] == best[r] && index[r] >= 0 ? -static_cast<T>(index[r]) : -static_cast<T>(INFINITY);
  }
}

template <typename T>
__global__ void sample_choice_decode_kernel(int* __restrict__ index, const T* __restrict__ choice, long rows) {
  PARATRAIN_GRID_LOOP(r, rows) index[r] = static_cast<int>(-choice[r]);
}

#undef PARATRAIN_GRID_LOOP

}  // namespace

template <typename T>
void fill(T* x, long n, T value) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n, kBlock), kBlock, 0, current_stream()>>>(x, n, value);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void add_into(T* dst, const T* src, long n) {
  if (n <= 0) return;
  add_into_kernel<<<grid_for(n, kBlock), kBlock, 0, current_stream()>>>(dst, src, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void scale(T* x, long n, T factor) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n, kBlock), kBlock, 0, current_stream()>>>(x, n, static_cast<float>(factor));
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void add_bias_rows(T* out, const T* b, long N, int O) {
  if (N <= 0 || O <= 0) return;
  add_bias_rows_kernel<<<grid_for(N * O, kBlock), kBlock, 0, current_stream()>>>(out, b, N, O);
  CUDA_CHECK_LAUNCH();
}

void strided_rows(int* rows, int count, int stride) {
  if (count <= 0) return;
  strided_rows_kernel<<<grid_for(count, kBlock), kBlock, 0, current_stream()>>>(rows, count, stride);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void split_pairs(T* first, T* second, const T* pairs, long n) {
  if (n <= 0) return;
  split_pairs_kernel<<<grid_for(n, kBlock), kBlock, 0, current_stream()>>>(first, second, pairs, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void join_pairs(T* pairs, const T* first, const T* second, long n) {
  if (n <= 0) return;
  join_pairs_kernel<<<grid_for(n, kBlock), kBlock, 0, current_stream()>>>(pairs, first, second, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
double squared_error(const T* pred, const float* target, long n, T grad_scale, T* grad, double* scratch) {
  if (n <= 0) return 0.0;
  const unsigned blocks = reduce_grid(n);
  squared_error_kernel<<<blocks, kBlock, 0, current_stream()>>>(pred, target, n, grad_scale, grad, scratch);
  CUDA_CHECK_LAUNCH();
  return sum_partials_and_fetch(scratch, blocks);
}

template <typename T>
long argmax_hits(const T* logits, const int* labels, long rows, int C, int ignore_index, double* scratch) {
  if (rows <= 0) return 0;
  const unsigned blocks = reduce_grid(rows);
  argmax_hits_kernel<<<blocks, kBlock, 0, current_stream()>>>(logits, labels, rows, C, ignore_index, scratch);
  CUDA_CHECK_LAUNCH();
  return static_cast<long>(sum_partials_and_fetch(scratch, blocks));
}

void apply_samples(int* tokens, uint8_t* replaced, const int* rows, const int* draws, const int* labels, int M) {
  if (M <= 0) return;
  apply_samples_kernel<<<grid_for(M, kBlock), kBlock, 0, current_stream()>>>(tokens, replaced, rows, draws, labels,
                                                                            M);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void sample_choice_encode(T* choice, const T* best, const int* index, long rows) {
  if (rows <= 0) return;
  sample_choice_encode_kernel<<<grid_for(rows, kBlock), kBlock, 0, current_stream()>>>(choice, best, index, rows);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void sample_choice_decode(int* index, const T* choice, long rows) {
  if (rows <= 0) return;
  sample_choice_decode_kernel<<<grid_for(rows, kBlock), kBlock, 0, current_stream()>>>(index, choice, rows);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE_FILL(T) template void fill<T>(T*, long, T);
INSTANTIATE_FILL(float)
INSTANTIATE_FILL(__nv_bfloat16)
INSTANTIATE_FILL(double)
INSTANTIATE_FILL(int)
INSTANTIATE_FILL(uint8_t)
INSTANTIATE_FILL(uint64_t)
INSTANTIATE_FILL(int64_t)
#undef INSTANTIATE_FILL

#define INSTANTIATE(T)                                                                    \
  template void add_into<T>(T*, const T*, long);                                          \
  template void scale<T>(T*, long, T);                                                    \
  template void add_bias_rows<T>(T*, const T*, long, int);                                \
  template void split_pairs<T>(T*, T*, const T*, long);                                   \
  template void join_pairs<T>(T*, const T*, const T*, long);                              \
  template double squared_error<T>(const T*, const float*, long, T, T*, double*);         \
  template long argmax_hits<T>(const T*, const int*, long, int, int, double*);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

template void sample_choice_encode<float>(float*, const float*, const int*, long);
template void sample_choice_decode<float>(int*, const float*, long);

}  // namespace paratrain::cuda
