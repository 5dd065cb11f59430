// cross_entropy.cu — twin of cpu/cross_entropy.h. One block per row (vocabularies are 30k–50k
// wide); block reductions have a fixed order. Per-row losses go to the caller's scratch and one
// block sums them in a fixed order, so the returned loss is bitwise reproducible.
#include "common.cuh"  // current_stream, CUDA_CHECK, block_sum, block_max
#include "cross_entropy.cuh"
#include "tensor_ops.cuh"  // kReduceBlocks, kReduceFigures (the fixed-size partials of binary_cross_entropy)

namespace paratrain::cuda {

namespace {

constexpr int kRowThreads = 512;
constexpr int kReduceThreads = 1024;
constexpr long kMaxRowBlocks = 1L << 20;

unsigned row_grid(long rows) { return static_cast<unsigned>(rows < kMaxRowBlocks ? rows : kMaxRowBlocks); }

// row_loss[r] = log Σ exp(x − max) − (x[label] − max), or 0 for an ignored row; the gradient in place.
template <typename T>
__global__ void softmax_cross_entropy_kernel(T* __restrict__ logits, const int* __restrict__ labels, long rows, int V,
                                             int ignore_index, float grad_scale, double* __restrict__ row_loss) {
  __shared__ float s_red[32];
  __shared__ float s_label_logit;
  const bool write_grad = grad_scale != 0.0f;
  for (long r = blockIdx.x; r < rows; r += gridDim.x) {
    T* x = logits + r * V;
    const int label = labels[r];
    if (label == ignore_index) {
      if (write_grad)
        for (int v = threadIdx.x; v < V; v += blockDim.x) x[v] = from_float<T>(0.0f);
      if (threadIdx.x == 0) row_loss[r] = 0.0;
      continue;  // uniform over the block
    }
    __syncthreads();  // s_label_logit of the previous row is consumed
    if (threadIdx.x == 0) s_label_logit = to_float(x[label]);  // read before any thread overwrites it
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, to_float(x[v]));
    mx = block_max(mx, s_red);  // its barriers also publish s_label_logit
    float sum = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) sum += expf(to_float(x[v]) - mx);
    sum = block_sum(sum, s_red);
    if (write_grad) {
      const float scale = grad_scale / sum;
      for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float g = expf(to_float(x[v]) - mx) * scale;
        if (v == label) g -= grad_scale;
        x[v] = from_float<T>(g);
      }
    }
    if (threadIdx.x == 0) row_loss[r] = log(static_cast<double>(sum)) - static_cast<double>(s_label_logit - mx);
  }
}

// out[0] = Σ row_loss over counted rows, out[1] = their count; one block, fixed order.
__global__ void cross_entropy_reduce_kernel(const double* __restrict__ row_loss, const int* __restrict__ labels,
                                            long rows, int ignore_index, double* __restrict__ out) {
  __shared__ double s_red[32];
  double loss = 0, count = 0;
  for (long r = threadIdx.x; r < rows; r += blockDim.x)
    if (labels[r] != ignore_index) {
      loss += row_loss[r];
      count += 1;
    }
  loss = block_sum(loss, s_red);
  count = block_sum(count, s_red);
  if (threadIdx.x == 0) {
    out[0] = loss;
    out[1] = count;
  }
}

CrossEntropyResult reduce_and_fetch(const int* labels, long rows, int ignore_index, double* scratch) {
  cross_entropy_reduce_kernel<<<1, kReduceThreads, 0, current_stream()>>>(scratch, labels, rows, ignore_index,
                                                                          scratch + rows);
  CUDA_CHECK_LAUNCH();
  double host[2];
  CUDA_CHECK(cudaMemcpyAsync(host, scratch + rows, sizeof host, cudaMemcpyDeviceToHost, current_stream()));
  CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  return {host[0], static_cast<long>(host[1])};
}

template <typename T>
__global__ void row_max_kernel(const T* __restrict__ logits, long rows, int Vl, int valid, T* __restrict__ row_max) {
  __shared__ float s_red[32];
  for (long r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * Vl;
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < valid; v += blockDim.x) mx = fmaxf(mx, to_float(x[v]));
    mx = block_max(mx, s_red);
    if (threadIdx.x == 0) row_max[r] = from_float<T>(mx);
  }
}

template <typename T>
__global__ void sum_exp_kernel(T* __restrict__ logits, const int* __restrict__ labels, long rows, int Vl, int valid,
                               int vocab_start, int ignore_index, const T* __restrict__ row_max,
                               T* __restrict__ sum_target, bool keep_exp) {
  __shared__ float s_red[32];
  for (long r = blockIdx.x; r < rows; r += gridDim.x) {
    T* x = logits + r * Vl;
    const int label = labels[r];
    float sum = 0, target = 0;
    if (label != ignore_index) {  // uniform over the block
      const int local = label - vocab_start;
      if (local >= 0 && local < valid) target = to_float(x[local]);  // every thread, before any write
      __syncthreads();
      const float mx = to_float(row_max[r]);
      for (int v = threadIdx.x; v < valid; v += blockDim.x) {
        const float e = expf(to_float(x[v]) - mx);
        if (keep_exp) x[v] = from_float<T>(e);
        sum += e;
      }
      sum = block_sum(sum, s_red);
    }
    if (threadIdx.x == 0) {
      sum_target[r] = from_float<T>(sum);
      sum_target[rows + r] = from_float<T>(target);
    }
  }
}

template <typename T>
__global__ void vocab_parallel_loss_kernel(T* __restrict__ logits, const int* __restrict__ labels, long rows, int Vl,
                                           int valid, int vocab_start, int ignore_index,
                                           const T* __restrict__ row_max, const T* __restrict__ sum_target,
                                           float grad_scale, double* __restrict__ row_loss) {
  const bool write_grad = grad_scale != 0.0f;
  for (long r = blockIdx.x; r < rows; r += gridDim.x) {
    T* x = logits + r * Vl;
    const int label = labels[r];
    if (label == ignore_index) {
      if (write_grad)
        for (int v = threadIdx.x; v < Vl; v += blockDim.x) x[v] = from_float<T>(0.0f);
      if (threadIdx.x == 0) row_loss[r] = 0.0;
      continue;
    }
    const float sum = to_float(sum_target[r]);
    if (write_grad) {
      const float scale = grad_scale / sum;
      const int local = label - vocab_start;
      for (int v = threadIdx.x; v < Vl; v += blockDim.x) {
        float g = v < valid ? to_float(x[v]) * scale : 0.0f;
        if (v == local && local < valid) g -= grad_scale;
        x[v] = from_float<T>(g);
      }
    }
    if (threadIdx.x == 0)
      row_loss[r] = log(static_cast<double>(sum)) -
                    static_cast<double>(to_float(sum_target[rows + r]) - to_float(row_max[r]));
  }
}

// Binary cross-entropy: per block, the five figures of its rows (grid-stride, fixed indices) in
// partials[f·kReduceBlocks + block]; the gradient in place of the CPU's.
constexpr int kBinaryThreads = 256;
template <typename T>
__global__ void binary_cross_entropy_kernel(const T* __restrict__ logits, const uint8_t* __restrict__ labels,
                                            const uint8_t* __restrict__ mask, long rows, float grad_scale,
                                            T* __restrict__ grad, double* __restrict__ partials) {
  __shared__ double s_red[32];
  const bool write_grad = grad_scale != 0.0f;
  double fig[kReduceFigures] = {0, 0, 0, 0, 0};  // loss, count, correct, positives, true positives
  for (long r = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += static_cast<long>(gridDim.x) * blockDim.x) {
    if (mask && !mask[r]) {
      if (write_grad) grad[r] = from_float<T>(0.0f);
      continue;
    }
    const float x = to_float(logits[r]);
    const int y = labels[r] ? 1 : 0;
    const double xd = x;
    // max(x, 0) − x·y + log(1 + e^−|x|): stable for any x.
    fig[0] += fmax(xd, 0.0) - xd * y + log1p(exp(-fabs(xd)));
    if (write_grad) grad[r] = from_float<T>(grad_scale * (1.0f / (1.0f + expf(-x)) - static_cast<float>(y)));
    const int predicted = x > 0.0f ? 1 : 0;
    fig[1] += 1;
    fig[2] += predicted == y;
    fig[3] += y;
    fig[4] += predicted == 1 && y == 1;
  }
  for (int f = 0; f < kReduceFigures; f++) {
    const double s = block_sum(fig[f], s_red);
    if (threadIdx.x == 0) partials[f * kReduceBlocks + blockIdx.x] = s;
  }
}

// out[f] = Σ_b partials[f·kReduceBlocks + b] for b < blocks: one block, fixed order.
__global__ void binary_reduce_kernel(const double* __restrict__ partials, int blocks, double* __restrict__ out) {
  __shared__ double s_red[32];
  for (int f = 0; f < kReduceFigures; f++) {
    double s = 0;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) s += partials[f * kReduceBlocks + b];
    s = block_sum(s, s_red);
    if (threadIdx.x == 0) out[f] = s;
  }
}

}  // namespace

template <typename T>
CrossEntropyResult softmax_cross_entropy(T* logits, const int* labels, long rows, int V, int ignore_index,
                                         T grad_scale, double* scratch) {
  if (rows <= 0) return {0.0, 0};
  softmax_cross_entropy_kernel<<<row_grid(rows), kRowThreads, 0, current_stream()>>>(
      logits, labels, rows, V, ignore_index, static_cast<float>(grad_scale), scratch);
  CUDA_CHECK_LAUNCH();
  return reduce_and_fetch(labels, rows, ignore_index, scratch);
}

template <typename T>
void vocab_parallel_row_max(const T* logits, long rows, int Vl, int valid, T* row_max) {
  if (rows <= 0) return;
  row_max_kernel<<<row_grid(rows), kRowThreads, 0, current_stream()>>>(logits, rows, Vl, valid, row_max);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void vocab_parallel_sum_exp(T* logits, const int* labels, long rows, int Vl, int valid, int vocab_start,
                            int ignore_index, const T* row_max, T* sum_target, bool keep_exp) {
  if (rows <= 0) return;
  sum_exp_kernel<<<row_grid(rows), kRowThreads, 0, current_stream()>>>(logits, labels, rows, Vl, valid, vocab_start,
                                                                       ignore_index, row_max, sum_target, keep_exp);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
CrossEntropyResult vocab_parallel_loss(T* logits, const int* labels, long rows, int Vl, int valid, int vocab_start,
                                       int ignore_index, const T* row_max, const T* sum_target, T grad_scale,
                                       double* scratch) {
  if (rows <= 0) return {0.0, 0};
  vocab_parallel_loss_kernel<<<row_grid(rows), kRowThreads, 0, current_stream()>>>(
      logits, labels, rows, Vl, valid, vocab_start, ignore_index, row_max, sum_target,
      static_cast<float>(grad_scale), scratch);
  CUDA_CHECK_LAUNCH();
  return reduce_and_fetch(labels, rows, ignore_index, scratch);
}

template <typename T>
BinaryResult binary_cross_entropy(const T* logits, const uint8_t* labels, const uint8_t* mask, long rows,
                                  T grad_scale, T* grad, double* scratch) {
  if (rows <= 0) return {};
  const unsigned blocks = grid_for(rows, kBinaryThreads, kReduceBlocks);
  binary_cross_entropy_kernel<<<blocks, kBinaryThreads, 0, current_stream()>>>(
      logits, labels, mask, rows, static_cast<float>(grad_scale), grad, scratch);
  CUDA_CHECK_LAUNCH();
  double* out = scratch + kReduceFigures * kReduceBlocks;
  binary_reduce_kernel<<<1, kBinaryThreads, 0, current_stream()>>>(scratch, static_cast<int>(blocks), out);
  CUDA_CHECK_LAUNCH();
  double host[kReduceFigures];
  CUDA_CHECK(cudaMemcpyAsync(host, out, sizeof host, cudaMemcpyDeviceToHost, current_stream()));
  CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  BinaryResult result;
  result.loss_sum = host[0];
  result.count = static_cast<long>(host[1]);
  result.correct = static_cast<long>(host[2]);
  result.positives = static_cast<long>(host[3]);
  result.true_positives = static_cast<long>(host[4]);
  return result;
}

#define INSTANTIATE(T)                                                                                              \
  template CrossEntropyResult softmax_cross_entropy<T>(T*, const int*, long, int, int, T, double*);                 \
  template void vocab_parallel_row_max<T>(const T*, long, int, int, T*);                                            \
  template void vocab_parallel_sum_exp<T>(T*, const int*, long, int, int, int, int, const T*, T*, bool);            \
  template CrossEntropyResult vocab_parallel_loss<T>(T*, const int*, long, int, int, int, int, const T*, const T*, T, \
                                                     double*); \
  template BinaryResult binary_cross_entropy<T>(const T*, const uint8_t*, const uint8_t*, long, T, T*, double*);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

}  // namespace paratrain::cuda
