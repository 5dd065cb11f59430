// embedding.h — token + position (+ segment) embedding sum and its scatter-add backward.
#pragma once
#include <algorithm>  // std::min

namespace paratrain::cpu {

// out[B·T,H] = word[tokens] + position[t] (+ segment[segments])
template <typename T>
void embedding_forward(T* out, const int* tokens, const int* segments, const T* word, const T* position,
                       const T* segment, int B, int T_, int H) {
#pragma omp parallel for schedule(static)
  for (long n = 0; n < static_cast<long>(B) * T_; n++) {
    const int t = static_cast<int>(n % T_);
    const T* w = word + static_cast<long>(tokens[n]) * H;
    const T* p = position + static_cast<long>(t) * H;
    T* y = out + n * H;
    for (int c = 0; c < H; c++) y[c] = w[c] + p[c];
    if (segment) {
      const T* s = segment + static_cast<long>(segments[n]) * H;
      for (int c = 0; c < H; c++) y[c] += s[c];
    }
  }
}

// dword, dposition, dsegment += scatter of dout. Threads own column blocks, so repeated token
// ids never race and the summation order is fixed (deterministic).
template <typename T>
void embedding_backward(T* dword, T* dposition, T* dsegment, const T* dout, const int* tokens, const int* segments,
                        int B, int T_, int H) {
  constexpr int kBlock = 32;
  const int blocks = (H + kBlock - 1) / kBlock;
  const long N = static_cast<long>(B) * T_;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; blk++) {
    const int c0 = blk * kBlock, c1 = std::min(H, c0 + kBlock);
    for (long n = 0; n < N; n++) {
      const T* g = dout + n * H;
      T* w = dword + static_cast<long>(tokens[n]) * H;
      T* p = dposition + static_cast<long>(n % T_) * H;
      for (int c = c0; c < c1; c++) {
        w[c] += g[c];
        p[c] += g[c];
      }
      if (dsegment) {
        T* s = dsegment + static_cast<long>(segments[n]) * H;
        for (int c = c0; c < c1; c++) s[c] += g[c];
      }
    }
  }
}

}  // namespace paratrain::cpu
