// rows.h — gather/scatter of selected rows and small element-wise maps used by the model heads.
#pragma once
#include <cmath>  // std::tanh

namespace paratrain::cpu {

// out[M,H] = in[rows[m], :]
template <typename T>
void gather_rows(T* out, const T* in, const int* rows, int M, int H) {
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; m++)
    for (int c = 0; c < H; c++) out[static_cast<long>(m) * H + c] = in[static_cast<long>(rows[m]) * H + c];
}

// dst[rows[m], :] += src[m, :]   (rows are distinct)
template <typename T>
void scatter_add_rows(T* dst, const T* src, const int* rows, int M, int H) {
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; m++)
    for (int c = 0; c < H; c++) dst[static_cast<long>(rows[m]) * H + c] += src[static_cast<long>(m) * H + c];
}

template <typename T>
void tanh_forward(T* out, const T* in, long n) {
  for (long i = 0; i < n; i++) out[i] = std::tanh(in[i]);
}

// din = dout · (1 − out²)
template <typename T>
void tanh_backward(T* din, const T* dout, const T* out, long n) {
  for (long i = 0; i < n; i++) din[i] = dout[i] * (T(1) - out[i] * out[i]);
}

}  // namespace paratrain::cpu
