// rows.cuh — CUDA twins of gather_rows / scatter_add_rows (cpu/rows.h) and bias_backward
// (cpu/linear.h). Same arguments and meaning; pointers (rows too) are device pointers.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16

namespace paratrain::cuda {

// out[M,H] = in[rows[m], :]
template <typename T>
void gather_rows(T* out, const T* in, const int* rows, int M, int H);

// dst[rows[m], :] += src[m, :]   (rows are distinct, so every element has one writer)
template <typename T>
void scatter_add_rows(T* dst, const T* src, const int* rows, int M, int H);

// db[O] += Σ_n dout[n, :]  — column sums in a fixed order (deterministic, no atomics).
template <typename T>
void bias_backward(T* db, const T* dout, int N, int O);

}  // namespace paratrain::cuda
