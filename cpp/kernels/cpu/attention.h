// attention.h — multi-head scaled dot-product self-attention over a fused QKV activation.
// qkv[B,T,3C] holds q | k | v along the last axis (C = heads·head_dim), head h at columns h·d.
// Masks: a key-padding mask (BERT, 1 = real token) and/or causal (GPT). Masked keys get
// probability exactly 0. Attention-probability dropout is regenerated in backward.
#pragma once
#include <algorithm>  // std::max
#include <cmath>      // std::exp, std::sqrt
#include <cstdint>    // uint8_t, uint64_t
#include <limits>     // numeric_limits

#include "dropout.h"    // dropout_scale
#include "fast_math.h"  // fast_exp
#include "gemm.h"     // gemm

#ifdef _OPENMP
#include <omp.h>  // omp_get_thread_num
#endif

namespace paratrain::cpu {

struct AttentionShape {
  int B, T, heads, head_dim;
  bool causal;
  const uint8_t* key_mask;  // [B,T] or null
  float dropout;            // on probabilities
  uint64_t dropout_key;
};

inline int attention_thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline bool attention_key_visible(const AttentionShape& s, int b, int i, int j) {
  if (s.causal && j > i) return false;
  return !s.key_mask || s.key_mask[static_cast<long>(b) * s.T + j] != 0;
}

// What attention keeps from forward for backward, and its per-pass scratch, in elements (the CUDA
// twin keeps a row logsumexp instead of the probabilities: the model sizes both through these).
inline long attention_saved_floats(const AttentionShape& s) {
  return static_cast<long>(s.B) * s.heads * s.T * s.T;  // the probabilities [B, heads, T, T]
}
inline long attention_scratch_floats(const AttentionShape& s, int threads) {
  return static_cast<long>(threads > 1 ? threads : 1) * 2 * s.T * s.T;  // per thread: dP and dropped P
}

// Writes into `dst` the probabilities as used in the context product (after dropout).
template <typename T>
void attention_dropped_probs(T* dst, const T* probs, const AttentionShape& s, long bh) {
  const long TT = static_cast<long>(s.T) * s.T;
  for (long i = 0; i < TT; i++) dst[i] = probs[i] * dropout_scale<T>(s.dropout_key, bh * TT + i, s.dropout);
}

// ctx[B,T,C], probs[B,heads,T,T] (saved, before dropout); scratch: per thread T·T elements.
template <typename T>
void attention_forward(T* ctx, T* probs, const T* qkv, const AttentionShape& s, T* scratch) {
  const int T_ = s.T, d = s.head_dim, C = s.heads * d, C3 = 3 * C;
  const T scale = T(1) / std::sqrt(T(d));
#pragma omp parallel for schedule(static)
  for (long bh = 0; bh < static_cast<long>(s.B) * s.heads; bh++) {
    const int b = static_cast<int>(bh / s.heads), h = static_cast<int>(bh % s.heads);
    const T* q = qkv + static_cast<long>(b) * T_ * C3 + h * d;
    const T* k = q + C;
    const T* v = q + 2 * C;
    T* P = probs + bh * T_ * T_;
    gemm(false, true, T_, T_, d, scale, q, C3, k, C3, T(0), P, T_);
    for (int i = 0; i < T_; i++) {
      T* row = P + static_cast<long>(i) * T_;
      T mx = -std::numeric_limits<T>::infinity();
      for (int j = 0; j < T_; j++)
        if (attention_key_visible(s, b, i, j)) mx = std::max(mx, row[j]);
      T sum = 0;
      for (int j = 0; j < T_; j++) {
        row[j] = attention_key_visible(s, b, i, j) ? fast_exp(row[j] - mx) : T(0);
        sum += row[j];
      }
      const T inv = sum > 0 ? T(1) / sum : T(0);
      for (int j = 0; j < T_; j++) row[j] *= inv;
    }
    const T* used = P;
    if (s.dropout > 0) {
      T* dropped = scratch + static_cast<long>(attention_thread_id()) * T_ * T_;
      attention_dropped_probs(dropped, P, s, bh);
      used = dropped;
    }
    gemm(false, false, T_, d, T_, T(1), used, T_, v, C3, T(0), ctx + static_cast<long>(b) * T_ * C + h * d, C);
  }
}

// dqkv[B,T,3C] = ∂L/∂qkv (overwritten); scratch: per thread 2·T·T elements. `ctx` (the forward's
// output) is part of the contract for the CUDA twin, which needs it; this kernel reads the probabilities.
template <typename T>
void attention_backward(T* dqkv, const T* dctx, const T* qkv, const T* /*ctx*/, const T* probs,
                        const AttentionShape& s, T* scratch) {
  const int T_ = s.T, d = s.head_dim, C = s.heads * d, C3 = 3 * C;
  const T scale = T(1) / std::sqrt(T(d));
  const long TT = static_cast<long>(T_) * T_;
#pragma omp parallel for schedule(static)
  for (long bh = 0; bh < static_cast<long>(s.B) * s.heads; bh++) {
    const int b = static_cast<int>(bh / s.heads), h = static_cast<int>(bh % s.heads);
    const long base = static_cast<long>(b) * T_ * C3 + h * d;
    const T *q = qkv + base, *k = q + C, *v = q + 2 * C;
    T *dq = dqkv + base, *dk = dq + C, *dv = dq + 2 * C;
    const T* dc = dctx + static_cast<long>(b) * T_ * C + h * d;
    const T* P = probs + bh * TT;
    T* dP = scratch + static_cast<long>(attention_thread_id()) * 2 * TT;
    const T* used = P;
    if (s.dropout > 0) {
      T* dropped = dP + TT;
      attention_dropped_probs(dropped, P, s, bh);
      used = dropped;
    }
    gemm(true, false, T_, d, T_, T(1), used, T_, dc, C, T(0), dv, C3);  // dV = P̃ᵀ·dctx
    gemm(false, true, T_, T_, d, T(1), dc, C, v, C3, T(0), dP, T_);     // dP̃ = dctx·Vᵀ
    if (s.dropout > 0)
      for (long i = 0; i < TT; i++) dP[i] *= dropout_scale<T>(s.dropout_key, bh * TT + i, s.dropout);
    for (int i = 0; i < T_; i++) {  // softmax backward: dS = P ⊙ (dP − Σ_j P·dP)
      const T* p = P + static_cast<long>(i) * T_;
      T* g = dP + static_cast<long>(i) * T_;
      T dot = 0;
      for (int j = 0; j < T_; j++) dot += p[j] * g[j];
      for (int j = 0; j < T_; j++) g[j] = p[j] * (g[j] - dot);
    }
    gemm(false, false, T_, d, T_, scale, dP, T_, k, C3, T(0), dq, C3);  // dQ = scale·dS·K
    gemm(true, false, T_, d, T_, scale, dP, T_, q, C3, T(0), dk, C3);   // dK = scale·dSᵀ·Q
  }
}

}  // namespace paratrain::cpu
