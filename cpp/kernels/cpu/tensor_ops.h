// tensor_ops.h — the small tensor maps the model composes its parts with (fills, copies, sums, bias
// rows, index rows, the reductions behind a loss or a metric) and the transfers between host memory
// and a kernel buffer. The model never indexes a buffer on the host: on the GPU its buffers live in
// device memory. CUDA twin: cuda/tensor_ops.cuh (same arguments, device pointers).
#pragma once
#include <algorithm>  // std::fill, std::copy, std::max_element
#include <cmath>      // INFINITY
#include <cstdint>    // uint8_t

namespace paratrain::cpu {

// Doubles of scratch that any one reduction below (and softmax_cross_entropy, vocab_parallel_loss,
// binary_cross_entropy) needs over `rows` rows: none on the CPU, which reduces in registers.
inline long loss_scratch_doubles(long) { return 0; }

// x[0, n) = value
template <typename T>
void fill(T* x, long n, T value) {
  std::fill(x, x + n, value);
}

// dst[0, n) = src[0, n)
template <typename T>
void copy(T* dst, const T* src, long n) {
  std::copy(src, src + n, dst);
}

// dst[0, n) += src[0, n)
template <typename T>
void add_into(T* dst, const T* src, long n) {
  for (long i = 0; i < n; i++) dst[i] += src[i];
}

// out[N,O] += b[O] on every row (a row-parallel layer adds its bias after the reduction).
template <typename T>
void add_bias_rows(T* out, const T* b, long N, int O) {
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++)
    for (int o = 0; o < O; o++) out[n * O + o] += b[o];
}

// rows[i] = i·stride for i < count (the first token of each sequence: stride = T).
inline void strided_rows(int* rows, int count, int stride) {
  for (int i = 0; i < count; i++) rows[i] = i * stride;
}

// pairs[n, 2] → first[n], second[n] (question answering: start and end logits).
template <typename T>
void split_pairs(T* first, T* second, const T* pairs, long n) {
  for (long i = 0; i < n; i++) {
    first[i] = pairs[2 * i];
    second[i] = pairs[2 * i + 1];
  }
}

// first[n], second[n] → pairs[n, 2]
template <typename T>
void join_pairs(T* pairs, const T* first, const T* second, long n) {
  for (long i = 0; i < n; i++) {
    pairs[2 * i] = first[i];
    pairs[2 * i + 1] = second[i];
  }
}

// Σ (pred − target)² over n values, in double; grad[i] = 2·(pred − target)·grad_scale (regression).
template <typename T>
double squared_error(const T* pred, const float* target, long n, T grad_scale, T* grad, double* /*scratch*/) {
  double sum = 0;
  for (long i = 0; i < n; i++) {
    const double diff = static_cast<double>(pred[i]) - target[i];
    sum += diff * diff;
    grad[i] = static_cast<T>(2.0 * diff) * grad_scale;
  }
  return sum;
}

// Rows of logits[rows, C] whose label is not ignored and whose first maximum is the label.
template <typename T>
long argmax_hits(const T* logits, const int* labels, long rows, int C, int ignore_index, double* /*scratch*/) {
  long hits = 0;
  for (long r = 0; r < rows; r++) {
    if (labels[r] == ignore_index) continue;
    const T* row = logits + r * C;
    hits += std::max_element(row, row + C) - row == labels[r];
  }
  return hits;
}

// A sampling head's draws into the discriminator's input: tokens[rows[m]] = draws[m] and
// replaced[rows[m]] = (draws[m] != labels[m]) for m < M (the other positions are left as they are).
inline void apply_samples(int* tokens, uint8_t* replaced, const int* rows, const int* draws, const int* labels,
                          int M) {
  for (int m = 0; m < M; m++) {
    tokens[rows[m]] = draws[m];
    replaced[rows[m]] = draws[m] != labels[m];
  }
}

// The tensor-parallel draw's tie-break, around a max all-reduce of `best`: before it `choice` holds
// this rank's best; encode turns each row into −(global id) where this rank holds the group's best
// (−∞ elsewhere), so a second max-reduction picks the lowest id among exact ties; decode reads it.
template <typename T>
void sample_choice_encode(T* choice, const T* best, const int* index, long rows) {
  for (long r = 0; r < rows; r++)
    choice[r] = choice[r] == best[r] && index[r] >= 0 ? -static_cast<T>(index[r]) : -static_cast<T>(INFINITY);
}
template <typename T>
void sample_choice_decode(int* index, const T* choice, long rows) {
  for (long r = 0; r < rows; r++) index[r] = static_cast<int>(-choice[r]);
}

// Host memory ↔ a kernel buffer (on the CPU both are host memory).
template <typename T>
void upload(T* dst, const T* host_src, long n) {
  std::copy(host_src, host_src + n, dst);
}
template <typename T>
void download(T* host_dst, const T* src, long n) {
  std::copy(src, src + n, host_dst);
}

}  // namespace paratrain::cpu
