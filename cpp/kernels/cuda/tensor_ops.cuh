// tensor_ops.cuh — CUDA twin of cpu/tensor_ops.h: fills, copies, sums, bias rows, index rows, the
// reductions behind a loss or a metric, and the transfers between host memory and device buffers.
// Same names, arguments and meaning; pointers are device pointers (host_* ones host pointers); all
// work goes on current_stream(). The reductions (squared_error, argmax_hits) sum per-block
// partials in a fixed order into `scratch` (loss_scratch_doubles(rows) doubles, owned by the
// caller), copy the figure back and so synchronise the stream. Plain C++ may include this header.
#pragma once
#include <cuda_bf16.h>         // __nv_bfloat16
#include <cuda_runtime_api.h>  // cudaMemcpyAsync, cudaStreamSynchronize
#include <cstdint>             // uint8_t, uint64_t

#include "common.cuh"         // current_stream, CUDA_CHECK
#include "cross_entropy.cuh"  // cross_entropy_scratch_doubles

namespace paratrain::cuda {

// Blocks of a fixed-order reduction (squared_error, argmax_hits, binary_cross_entropy): each
// writes up to 5 partial figures, one block then adds them up; the grid depends only on the size,
// so the result is the same on every run.
constexpr long kReduceBlocks = 1024;
constexpr long kReduceFigures = 5;

// Doubles of scratch that any one of softmax_cross_entropy, vocab_parallel_loss,
// binary_cross_entropy, squared_error and argmax_hits needs over `rows` rows (squared_error's and
// binary_cross_entropy's need does not grow with the size, so any n fits).
inline long loss_scratch_doubles(long rows) {
  const long partials = kReduceFigures * (kReduceBlocks + 1);
  const long ce = cross_entropy_scratch_doubles(rows);
  return ce > partials ? ce : partials;
}

// x[0, n) = value  (T: float, bf16, double, int, uint8_t, uint64_t)
template <typename T>
void fill(T* x, long n, T value);

// dst[0, n) = src[0, n) (device to device)
template <typename T>
void copy(T* dst, const T* src, long n) {
  if (n <= 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice,
                             current_stream()));
}

// dst[0, n) += src[0, n)
template <typename T>
void add_into(T* dst, const T* src, long n);

// x[0, n) *= factor
template <typename T>
void scale(T* x, long n, T factor);

// out[N,O] += b[O] on every row.
template <typename T>
void add_bias_rows(T* out, const T* b, long N, int O);

// rows[i] = i·stride for i < count.
void strided_rows(int* rows, int count, int stride);

// pairs[n, 2] → first[n], second[n]
template <typename T>
void split_pairs(T* first, T* second, const T* pairs, long n);
// first[n], second[n] → pairs[n, 2]
template <typename T>
void join_pairs(T* pairs, const T* first, const T* second, long n);

// Σ (pred − target)² over n values, in double (returned: synchronises); grad[i] =
// T(2·(pred − target))·grad_scale. target: float device pointer. grad may be pred.
template <typename T>
double squared_error(const T* pred, const float* target, long n, T grad_scale, T* grad, double* scratch);

// Rows of logits[rows, C] whose label is not ignored and whose first maximum is the label
// (returned: synchronises).
template <typename T>
long argmax_hits(const T* logits, const int* labels, long rows, int C, int ignore_index, double* scratch);

// tokens[rows[m]] = draws[m], replaced[rows[m]] = (draws[m] != labels[m]) for m < M.
void apply_samples(int* tokens, uint8_t* replaced, const int* rows, const int* draws, const int* labels, int M);

// The tensor-parallel draw's tie-break (cpu/tensor_ops.h). float only: −id must be exact, and
// bf16 holds integers exactly only up to 256 (a vocabulary id would be rounded).
template <typename T>
void sample_choice_encode(T* choice, const T* best, const int* index, long rows);
template <typename T>
void sample_choice_decode(int* index, const T* choice, long rows);

// Host → device, asynchronous on the current stream. From pageable memory (a std::vector) the
// call returns once the data has been staged, so host_src may be reused or freed right away; from
// pinned memory (cudaMallocHost) the copy is truly asynchronous and host_src must stay alive and
// unchanged until the stream has synchronised.
template <typename T>
void upload(T* dst, const T* host_src, long n) {
  if (n <= 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, host_src, static_cast<size_t>(n) * sizeof(T), cudaMemcpyHostToDevice,
                             current_stream()));
}

// Device → host; synchronises the current stream, so host_dst is readable on return.
template <typename T>
void download(T* host_dst, const T* src, long n) {
  if (n <= 0) return;
  CUDA_CHECK(cudaMemcpyAsync(host_dst, src, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost,
                             current_stream()));
  CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}

}  // namespace paratrain::cuda
