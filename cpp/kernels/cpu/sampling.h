// sampling.h — drawing a token per row from softmax(logits) with the Gumbel-max trick: the argmax of
// logits + Gumbel noise is distributed as softmax(logits). The noise of element (row, global id) is a
// pure function of its key, so a vocabulary split across ranks draws exactly the single-process token.
#pragma once
#include <cmath>    // std::log
#include <cstdint>  // uint64_t

#include "../../common/rng.h"  // rng_open_uniform

namespace paratrain::cpu {

// Gumbel(0, 1) noise for element `index` of stream `key`.
inline float gumbel_noise(uint64_t key, uint64_t index) { return -std::log(-std::log(rng_open_uniform(key, index))); }

// For each row r of logits[rows, V] (the first `valid` columns are real, their global ids v0 + v):
// best[r] = max_v logits[r,v] + gumbel(keys[r], offsets[r] + v0 + v) and index[r] = the global id of
// the first maximum (-1 when the row has no real column).
template <typename T>
void gumbel_argmax_rows(const T* logits, long rows, int V, int valid, int v0, const uint64_t* keys,
                        const uint64_t* offsets, T* best, int* index) {
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; r++) {
    const T* x = logits + r * V;
    T top = -INFINITY;
    int arg = -1;
    for (int v = 0; v < valid; v++) {
      const T y = x[v] + static_cast<T>(gumbel_noise(keys[r], offsets[r] + static_cast<uint64_t>(v0 + v)));
      if (y > top) {
        top = y;
        arg = v0 + v;
      }
    }
    best[r] = top;
    index[r] = arg;
  }
}

}  // namespace paratrain::cpu
