// cross_entropy.h — softmax cross-entropy with an ignore index. One pass per row computes the
// loss and, when asked, overwrites the logits with ∂L/∂logits: the probabilities are never
// materialised as a second [rows, V] tensor.
#pragma once
#include <algorithm>  // std::max
#include <cmath>      // std::log

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
                                         T grad_scale) {
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

}  // namespace paratrain::cpu
