// linear.h — fully connected layer, PyTorch layout: W[O, I], y = x·Wᵀ + b.
#pragma once
#include <algorithm>  // std::min

#include "gelu.h"  // gelu_forward/backward (the fused forms)
#include "gemm.h"  // gemm

namespace paratrain::cpu {

// out[N,O] = in[N,I] · W[O,I]ᵀ + b[O]   (b may be null)
template <typename T>
void linear_forward(T* out, const T* in, const T* W, const T* b, int N, int I, int O) {
  gemm(false, true, N, O, I, T(1), in, I, W, I, T(0), out, O);
  if (!b) return;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    T* row = out + static_cast<long>(n) * O;
    for (int o = 0; o < O; o++) row[o] += b[o];
  }
}

// db[O] += Σ_n dout[n, :]   — column blocks per thread so no two threads touch one output.
template <typename T>
void bias_backward(T* db, const T* dout, int N, int O) {
  constexpr int kBlock = 64;
  const int blocks = (O + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; blk++) {
    const int o0 = blk * kBlock, o1 = std::min(O, o0 + kBlock);
    T acc[kBlock] = {};
    for (int n = 0; n < N; n++) {
      const T* row = dout + static_cast<long>(n) * O;
      for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
    }
    for (int o = o0; o < o1; o++) db[o] += acc[o - o0];
  }
}

// din[N,I] (= or +=) dout[N,O]·W[O,I];  dW[O,I] += doutᵀ·in;  db[O] += colsum(dout).
// din or db may be null (first layer input, no bias).
template <typename T>
void linear_backward(T* din, T* dW, T* db, const T* dout, const T* in, const T* W, int N, int I, int O,
                     bool accumulate_din) {
  if (din) gemm(false, false, N, I, O, T(1), dout, O, W, I, accumulate_din ? T(1) : T(0), din, I);
  gemm(true, false, O, I, N, T(1), dout, O, in, I, T(1), dW, I);
  if (db) bias_backward(db, dout, N, O);
}

// The fused forms the CUDA twin runs as one cuBLASLt GEMM with a GELU epilogue (GPT-2's tanh form
// only; the CUDA twin needs a bias and O % 8 == 0, resp. I % 8 == 0): here the same two steps, so
// both backends compute what the unfused pair computes.
// pre[N,O] = in·Wᵀ + b;  out[N,O] = gelu_tanh(pre)
template <typename T>
void linear_gelu_forward(T* out, T* pre, const T* in, const T* W, const T* b, int N, int I, int O) {
  linear_forward(pre, in, W, b, N, I, O);
  gelu_forward(out, pre, static_cast<long>(N) * O, GeluForm::Tanh);
}

// din[N,I] = (dout[N,O]·W[O,I]) ⊙ gelu_tanh'(pre[N,I])   (overwritten; the weight gradients are
// linear_backward's with din = null)
template <typename T>
void linear_backward_input_dgelu(T* din, const T* dout, const T* W, const T* pre, int N, int I, int O) {
  gemm(false, false, N, I, O, T(1), dout, O, W, I, T(0), din, I);
  gelu_backward(din, din, pre, static_cast<long>(N) * I, GeluForm::Tanh);
}

}  // namespace paratrain::cpu
