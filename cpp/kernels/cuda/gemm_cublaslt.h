// gemm_cublaslt.h — fully connected layers on cuBLASLt: twins of cpu/linear.h (W[O,I], y = x·Wᵀ + b),
// plus the fused GELU forms that pay on the GPU. Device pointers; the current stream
// (common.cuh current_stream()). Compiled only when CMake finds cuBLASLt (PARATRAIN_CUBLASLT_FOUND).
//
// Precision: float runs CUBLAS_COMPUTE_32F with TF32 off (so the 1e-5 check against the CPU holds)
// unless linear_allow_tf32(true); bf16 inputs accumulate in fp32 (CUBLAS_COMPUTE_32F), and the
// bf16 backward can write dW/db in float (mixed precision: fp32 gradient buffer).
//
// No allocation inside the step: linear_init() (call once per thread that runs GEMMs, when the
// engine is created) makes the cuBLASLt handle, the workspace and the bias-gradient scratch; a
// matmul plan (descriptors, layouts, heuristic's algorithm) is cached per shape/type/alignment on
// first use, so the first step builds the plans and later steps only look them up.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16
#include <cstddef>      // size_t

#include "../matmul_precision.h"  // MatmulPrecision

namespace paratrain::cuda {

// workspace_bytes: cuBLASLt workspace (32 MiB is plenty on Hopper); max_bias: the largest O of any
// layer (scratch for the bias gradient, which cuBLASLt overwrites and we must accumulate).
void linear_init(size_t workspace_bytes = size_t(32) << 20, int max_bias = 1 << 17);
void linear_allow_tf32(bool allow);  // float path only; default off
// The calling thread's float-path precision (matmul_precision.h): Bf16 / Fp16 run float GEMMs on
// tensor cores with 16-bit inputs (CUBLAS_COMPUTE_32F_FAST_16BF / _16F); Fp32 is exact fp32
// (or TF32 when allowed). A plan that cuBLASLt cannot serve in 16 bits falls back to fp32.
void set_matmul_precision(MatmulPrecision p);

// out[N,O] = in[N,I] · W[O,I]ᵀ + b[O]   (b may be null) — epilogue BIAS.
template <typename T>
void linear_forward(T* out, const T* in, const T* W, const T* b, int N, int I, int O);

// din[N,I] (= or +=) dout[N,O]·W[O,I];  dW[O,I] += doutᵀ·in;  db[O] += colsum(dout)  (epilogue BGRADB
// into scratch, then added). din or db may be null. G = T, or float for bf16 (fp32 gradients).
template <typename T, typename G>
void linear_backward(T* din, G* dW, G* db, const T* dout, const T* in, const T* W, int N, int I, int O,
                     bool accumulate_din);

// GPT-2's MLP up-projection in one GEMM: pre[N,O] = in·Wᵀ + b, out[N,O] = gelu_tanh(pre)
// (epilogue GELU_AUX_BIAS; cuBLASLt's GELU is the tanh form, so BERT's erf GELU must not use it).
// Requires O % 8 == 0 (aux leading dimension). b must not be null.
template <typename T>
void linear_gelu_forward(T* out, T* pre, const T* in, const T* W, const T* b, int N, int I, int O);

// The down-projection's input gradient fused with the GELU derivative (epilogue DGELU):
// din[N,I] = (dout[N,O]·W[O,I]) ⊙ gelu_tanh'(pre[N,I]), overwritten. Requires I % 8 == 0.
template <typename T>
void linear_backward_input_dgelu(T* din, const T* dout, const T* W, const T* pre, int N, int I, int O);

}  // namespace paratrain::cuda
