// cross_entropy.h — softmax cross-entropy with an ignore index. One pass per row computes the
// loss and, when asked, overwrites the logits with ∂L/∂logits: the probabilities are never
// materialised as a second [rows, V] tensor.
#pragma once
#include <algorithm>  // std::max
#include <cmath>      // std::exp, std::log

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
#pragma omp parallel for schedule(static) reduction(+ : loss_sum, count)
  for (long r = 0; r < rows; r++) {
    T* x = logits + r * V;
    const int label = labels[r];
    if (label == ignore_index) {
      if (grad_scale != T(0))
        for (int v = 0; v < V; v++) x[v] = 0;
      continue;
    }
    T mx = x[0];
    for (int v = 1; v < V; v++) mx = std::max(mx, x[v]);
    double sum = 0;
    for (int v = 0; v < V; v++) sum += std::exp(static_cast<double>(x[v] - mx));
    loss_sum += std::log(sum) - static_cast<double>(x[label] - mx);
    count += 1;
    if (grad_scale != T(0)) {
      const T inv = static_cast<T>(1.0 / sum);
      for (int v = 0; v < V; v++) x[v] = grad_scale * std::exp(x[v] - mx) * inv;
      x[label] -= grad_scale;
    }
  }
  return {loss_sum, count};
}

}  // namespace paratrain::cpu
