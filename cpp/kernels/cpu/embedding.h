// embedding.h — token + position (+ segment) embedding sum and its scatter-add backward.
#pragma once
#include <algorithm>  // std::min
#include <climits>    // INT_MAX

namespace paratrain::cpu {

// out[B·T,H] = word[tokens] + position[t] (+ segment[segments]).
// Vocabulary-parallel use: `word` holds rows [vocab_start, vocab_start + vocab_rows) only; a token
// outside them contributes zero, and position/segment may be null (added by one rank only).
template <typename T>
void embedding_forward(T* out, const int* tokens, const int* segments, const T* word, const T* position,
                       const T* segment, int B, int T_, int H, int vocab_start = 0, int vocab_rows = INT_MAX) {
#pragma omp parallel for schedule(static)
  for (long n = 0; n < static_cast<long>(B) * T_; n++) {
    const int t = static_cast<int>(n % T_);
    const int row = tokens[n] - vocab_start;
    T* y = out + n * H;
    if (row >= 0 && row < vocab_rows) {
      const T* w = word + static_cast<long>(row) * H;
      for (int c = 0; c < H; c++) y[c] = w[c];
    } else {
      for (int c = 0; c < H; c++) y[c] = 0;
    }
    if (position) {
      const T* p = position + static_cast<long>(t) * H;
      for (int c = 0; c < H; c++) y[c] += p[c];
    }
    if (segment) {
      const T* s = segment + static_cast<long>(segments[n]) * H;
      for (int c = 0; c < H; c++) y[c] += s[c];
    }
  }
}

// dword, dposition, dsegment += scatter of dout. Threads own column blocks, so repeated token
// ids never race and the summation order is fixed (deterministic). Vocabulary-parallel: only the
// tokens in this rank's rows [vocab_start, vocab_start + vocab_rows) reach dword.
template <typename T>
void embedding_backward(T* dword, T* dposition, T* dsegment, const T* dout, const int* tokens, const int* segments,
                        int B, int T_, int H, int vocab_start = 0, int vocab_rows = INT_MAX) {
  constexpr int kBlock = 32;
  const int blocks = (H + kBlock - 1) / kBlock;
  const long N = static_cast<long>(B) * T_;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; blk++) {
    const int c0 = blk * kBlock, c1 = std::min(H, c0 + kBlock);
    for (long n = 0; n < N; n++) {
      const T* g = dout + n * H;
      const int row = tokens[n] - vocab_start;
      if (row >= 0 && row < vocab_rows) {
        T* w = dword + static_cast<long>(row) * H;
        for (int c = c0; c < c1; c++) w[c] += g[c];
      }
      T* p = dposition + static_cast<long>(n % T_) * H;
      for (int c = c0; c < c1; c++) p[c] += g[c];
      if (dsegment) {
        T* s = dsegment + static_cast<long>(segments[n]) * H;
        for (int c = c0; c < c1; c++) s[c] += g[c];
      }
    }
  }
}

}  // namespace paratrain::cpu
