// sampling.h — drawing a token per row from softmax(logits) with the Gumbel-max trick: the argmax of
// logits + Gumbel noise is distributed as softmax(logits). The noise of element (row, global id) is a
// pure function of its key, so a vocabulary split across ranks draws exactly the single-process token.
#pragma once
#include <cmath>    // INFINITY
#include <cstdint>  // uint64_t

#include "../../common/rng.h"  // rng_open_uniform
#include "fast_math.h"         // fast_log

namespace paratrain::cpu {

// For each row r of logits[rows, V] (the first `valid` columns are real, their global ids v0 + v):
// best[r] = max_v logits[r,v] + g(keys[r], offsets[r] + v0 + v) and index[r] = the global id of the
// first maximum (-1 when the row has no real column), with g = −ln(−ln u) the Gumbel(0, 1) noise of
// the counter-based uniform u in (0, 1).
template <typename T>
void gumbel_argmax_rows(const T* logits, long rows, int V, int valid, int v0, const uint64_t* keys,
                        const uint64_t* offsets, T* best, int* index) {
  constexpr int kChunk = 256;  // columns per pass: the hash (scalar), the logarithms (vectorised), the max
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; r++) {
    const T* x = logits + r * V;
    T top = -INFINITY;
    int arg = -1;
    for (int c0 = 0; c0 < valid; c0 += kChunk) {
      const int n = valid - c0 < kChunk ? valid - c0 : kChunk;
      float u[kChunk];
      for (int j = 0; j < n; j++) u[j] = rng_open_uniform(keys[r], offsets[r] + static_cast<uint64_t>(v0 + c0 + j));
      T y[kChunk];
#pragma omp simd
      for (int j = 0; j < n; j++) y[j] = x[c0 + j] - static_cast<T>(fast_log(-fast_log(u[j])));
      for (int j = 0; j < n; j++)
        if (y[j] > top) {
          top = y[j];
          arg = v0 + c0 + j;
        }
    }
    best[r] = top;
    index[r] = arg;
  }
}

}  // namespace paratrain::cpu
