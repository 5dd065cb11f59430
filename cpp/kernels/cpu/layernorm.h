// layernorm.h — LayerNorm over the last dimension C, saving mean and 1/std for backward.
#pragma once
#include <algorithm>  // std::min
#include <cmath>      // std::sqrt

namespace paratrain::cpu {

// out[N,C] = (in − mean) · rstd · w + b;  mean[N], rstd[N] saved.
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* w, const T* b, int N, int C, T eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const T* x = in + static_cast<long>(n) * C;
    T* y = out + static_cast<long>(n) * C;
    T m = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    T var = 0;
    for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
    var /= C;
    const T s = T(1) / std::sqrt(var + eps);
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * w[c] + b[c];
    mean[n] = m;
    rstd[n] = s;
  }
}

// din[N,C] (= or +=) ∂L/∂in;  dw[C] += Σ dout·x̂;  db[C] += Σ dout.
template <typename T>
void layernorm_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w, const T* mean, const T* rstd,
                        int N, int C, bool accumulate_din) {
  // Pass 1, rows in parallel: dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)), dx̂ = dout · w.
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const T* x = in + static_cast<long>(n) * C;
    const T* dy = dout + static_cast<long>(n) * C;
    T* dx = din + static_cast<long>(n) * C;
    const T m = mean[n], s = rstd[n];
    T sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (int c = 0; c < C; c++) {
      const T dxhat = dy[c] * w[c];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * (x[c] - m) * s;
    }
    sum_dxhat /= C;
    sum_dxhat_xhat /= C;
    for (int c = 0; c < C; c++) {
      const T xhat = (x[c] - m) * s;
      const T g = s * (dy[c] * w[c] - sum_dxhat - xhat * sum_dxhat_xhat);
      dx[c] = accumulate_din ? dx[c] + g : g;
    }
  }
  // Pass 2, column blocks in parallel: parameter gradients without races or scratch memory.
  constexpr int kBlock = 64;
  const int blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; blk++) {
    const int c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
    T acc_w[kBlock] = {}, acc_b[kBlock] = {};
    for (int n = 0; n < N; n++) {
      const T* x = in + static_cast<long>(n) * C;
      const T* dy = dout + static_cast<long>(n) * C;
      const T m = mean[n], s = rstd[n];
      for (int c = c0; c < c1; c++) {
        acc_w[c - c0] += dy[c] * (x[c] - m) * s;
        acc_b[c - c0] += dy[c];
      }
    }
    for (int c = c0; c < c1; c++) {
      dw[c] += acc_w[c - c0];
      db[c] += acc_b[c - c0];
    }
  }
}

}  // namespace paratrain::cpu
