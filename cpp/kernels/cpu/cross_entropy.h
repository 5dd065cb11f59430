// cross_entropy.h — softmax cross-entropy with an ignore index. One pass per row computes the
// loss and, when asked, overwrites the logits with ∂L/∂logits: the probabilities are never
// materialised as a second [rows, V] tensor. The functions that return a sum take a trailing
// `scratch` (loss_scratch_doubles(rows) doubles, tensor_ops.h): the CUDA twins reduce through it and
// synchronise; the CPU needs none.
#pragma once
#include <algorithm>  // std::max
#include <cmath>      // std::log, std::exp, std::log1p
#include <cstdint>    // uint8_t
#include <limits>     // std::numeric_limits

#include "fast_math.h"  // fast_exp

namespace paratrain::cpu {

struct CrossEntropyResult {
  double loss_sum;  // Σ over counted rows of −log p(label)
  long count;       // rows whose label is not ignored
};

inline long count_targets(const int* labels, long rows, int ignore_index) {
  long n = 0;
  for (long r = 0; r < rows; r++) n += labels[r] != ignore_index;
  return n;
}

// logits[rows,V]; when grad_scale != 0 the rows become grad_scale·(softmax − onehot) (ignored rows: 0).
template <typename T>
CrossEntropyResult softmax_cross_entropy(T* logits, const int* labels, long rows, int V, int ignore_index,
                                         T grad_scale, double* /*scratch*/ = nullptr) {
  double loss_sum = 0;
  long count = 0;
  const bool write_grad = grad_scale != T(0);
#pragma omp parallel for schedule(static) reduction(+ : loss_sum, count)
  for (long r = 0; r < rows; r++) {
    T* x = logits + r * V;
    const int label = labels[r];
    if (label == ignore_index) {
      if (write_grad)
        for (int v = 0; v < V; v++) x[v] = 0;
      continue;
    }
    T mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int v = 1; v < V; v++) mx = std::max(mx, x[v]);
    const T target = x[label] - mx;
    T sum = 0;
    if (write_grad) {  // keep e^(x − max) in place; the gradient is one multiply away
#pragma omp simd reduction(+ : sum)
      for (int v = 0; v < V; v++) {
        x[v] = fast_exp(x[v] - mx);
        sum += x[v];
      }
      const T scale = grad_scale / sum;
#pragma omp simd
      for (int v = 0; v < V; v++) x[v] *= scale;
      x[label] -= grad_scale;
    } else {
#pragma omp simd reduction(+ : sum)
      for (int v = 0; v < V; v++) sum += fast_exp(x[v] - mx);
    }
    loss_sum += std::log(static_cast<double>(sum)) - static_cast<double>(target);
    count += 1;
  }
  return {loss_sum, count};
}

// Vocabulary-parallel cross-entropy (Megatron): each tensor-parallel rank holds logits[rows, Vl]
// for vocabulary ids [vocab_start, vocab_start + Vl), of which the first `valid` columns are real
// tokens (the rest is padding, kept out of the softmax). The full logits are never gathered: three
// local passes run between two all-reduces over the group (max; then Σexp and the target logit).

// Pass 1: row_max[r] = max over this rank's real columns (−∞ when it has none).
template <typename T>
void vocab_parallel_row_max(const T* logits, long rows, int Vl, int valid, T* row_max) {
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; r++) {
    const T* x = logits + r * Vl;
    T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < valid; v++) mx = std::max(mx, x[v]);
    row_max[r] = mx;
  }
}

// Pass 2 (row_max now global): sum_target[r] = Σ_v exp(x − max) over this rank's columns, and
// sum_target[rows + r] = the label's logit when this rank holds the label, else 0. With keep_exp
// the exponentials stay in place for pass 3.
template <typename T>
void vocab_parallel_sum_exp(T* logits, const int* labels, long rows, int Vl, int valid, int vocab_start,
                            int ignore_index, const T* row_max, T* sum_target, bool keep_exp) {
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; r++) {
    T* x = logits + r * Vl;
    const int label = labels[r];
    T sum = 0, target = 0;
    if (label != ignore_index) {
      const int local = label - vocab_start;
      if (local >= 0 && local < valid) target = x[local];
      const T mx = row_max[r];
      if (keep_exp) {
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < valid; v++) {
          x[v] = fast_exp(x[v] - mx);
          sum += x[v];
        }
      } else {
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < valid; v++) sum += fast_exp(x[v] - mx);
      }
    }
    sum_target[r] = sum;
    sum_target[rows + r] = target;
  }
}

// Pass 3 (sums and targets now global): the loss over counted rows and, when grad_scale != 0, the
// rows become grad_scale·(softmax − onehot) restricted to this rank's columns (padding and
// ignored rows: 0). Needs pass 2 with keep_exp when writing the gradient.
template <typename T>
CrossEntropyResult vocab_parallel_loss(T* logits, const int* labels, long rows, int Vl, int valid, int vocab_start,
                                       int ignore_index, const T* row_max, const T* sum_target, T grad_scale,
                                       double* /*scratch*/ = nullptr) {
  double loss_sum = 0;
  long count = 0;
  const bool write_grad = grad_scale != T(0);
#pragma omp parallel for schedule(static) reduction(+ : loss_sum, count)
  for (long r = 0; r < rows; r++) {
    T* x = logits + r * Vl;
    const int label = labels[r];
    if (label == ignore_index) {
      if (write_grad)
        for (int v = 0; v < Vl; v++) x[v] = 0;
      continue;
    }
    const T sum = sum_target[r];
    if (write_grad) {
      const T scale = grad_scale / sum;
#pragma omp simd
      for (int v = 0; v < valid; v++) x[v] *= scale;
      for (int v = valid; v < Vl; v++) x[v] = 0;
      const int local = label - vocab_start;
      if (local >= 0 && local < valid) x[local] -= grad_scale;
    }
    loss_sum += std::log(static_cast<double>(sum)) - static_cast<double>(sum_target[rows + r] - row_max[r]);
    count += 1;
  }
  return {loss_sum, count};
}

// Binary cross-entropy with logits (replaced-token detection) over the rows whose mask is set (null:
// every row), labels 0/1. When grad_scale != 0, grad[r] = grad_scale·(σ(x) − y) (unmasked rows: 0).
// Also counts what an accuracy needs: rows predicted right (x > 0 ⇔ 1), positives, and positives
// predicted right.
struct BinaryResult {
  double loss_sum = 0;
  long count = 0, correct = 0, positives = 0, true_positives = 0;
};

template <typename T>
BinaryResult binary_cross_entropy(const T* logits, const uint8_t* labels, const uint8_t* mask, long rows,
                                  T grad_scale, T* grad, double* /*scratch*/ = nullptr) {
  double loss_sum = 0;
  long count = 0, correct = 0, positives = 0, true_positives = 0;
  const bool write_grad = grad_scale != T(0);
#pragma omp parallel for schedule(static) reduction(+ : loss_sum, count, correct, positives, true_positives)
  for (long r = 0; r < rows; r++) {
    if (mask && !mask[r]) {
      if (write_grad) grad[r] = 0;
      continue;
    }
    const T x = logits[r];
    const int y = labels[r] ? 1 : 0;
    // −[y·log σ(x) + (1 − y)·log(1 − σ(x))] = max(x, 0) − x·y + log(1 + e^−|x|), stable for any x.
    loss_sum += std::max(static_cast<double>(x), 0.0) - static_cast<double>(x) * y +
                std::log1p(std::exp(-std::abs(static_cast<double>(x))));
    if (write_grad) grad[r] = grad_scale * (T(1) / (T(1) + std::exp(-x)) - T(y));
    const int predicted = x > T(0) ? 1 : 0;
    count += 1;
    correct += predicted == y;
    positives += y;
    true_positives += predicted == 1 && y == 1;
  }
  return {loss_sum, count, correct, positives, true_positives};
}

}  // namespace paratrain::cpu
