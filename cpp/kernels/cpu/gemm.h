// gemm.h — row-major GEMM over CBLAS (OpenBLAS), overloaded for float and double so every
// kernel can be instantiated in double for finite-difference checks.
#pragma once
#include <cblas.h>  // cblas_sgemm, cblas_dgemm

namespace paratrain::cpu {

// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C
inline void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

inline void gemm(bool trans_a, bool trans_b, int M, int N, int K, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace paratrain::cpu
