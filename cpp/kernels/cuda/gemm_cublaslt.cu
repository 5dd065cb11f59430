// gemm_cublaslt.cu — see gemm_cublaslt.h. Written against the documented cuBLASLt API
// (cublasLt.h of CUDA 12/13); this machine has no cuBLAS headers, so the body is compiled only
// where <cublasLt.h> exists (and CMake adds this file only when PARATRAIN_CUBLASLT_FOUND).
//
// Row-major ↔ column-major. Our buffers are row-major; cuBLASLt's default order is column-major.
// A row-major X[r,c] with leading dimension ld is, read column-major, the matrix Xᵀ (c rows, r
// columns, same ld). So the row-major product
//     C[M,N] = op(A)[M,K] · op(B)[K,N]
// is issued as the column-major product
//     Cᵀ[N,M] = op(B)ᵀ[N,K] · op(A)ᵀ[K,M]
// i.e. cuBLAS's "A" is our B and cuBLAS's "B" is our A, each with its own transpose flag unchanged:
//     cuBLAS A = B_rowmajor: trans_b ? (OP_T, layout K×N, ld ldb) : (OP_N, layout N×K, ld ldb)
//     cuBLAS B = A_rowmajor: trans_a ? (OP_T, layout M×K, ld lda) : (OP_N, layout K×M, ld lda)
//     cuBLAS C = D = C_rowmajor: layout N×M, ld ldc;  m = N, n = M, k = K.
// Epilogues then read in column-major terms: BIAS adds a vector over D's rows (= our columns, the
// output features); BGRADB sums cuBLAS B over k for each column of D (= for dW += doutᵀ·in: Σ_n
// dout[n,o]); GELU_AUX / DGELU's aux matrix has D's shape, leading dimension = D's rows.
#include "gemm_cublaslt.h"

#if __has_include(<cublasLt.h>)
#include <cublasLt.h>      // cublasLt*
#include <cuda_runtime.h>  // cudaStream_t

#include <algorithm>  // std::min
#include <array>    // std::array (plan key)
#include <cstdint>  // uintptr_t, uint32_t, uint64_t, int64_t
#include <map>      // std::map
#include <string>   // std::string

#include "../../common/error.h"  // paratrain::Error
#include "buffer.h"              // device_alloc, device_free (ERR_CUDA_OOM when the device is full)
#include "common.cuh"            // CUDA_CHECK, CUDA_CHECK_LAUNCH, current_stream, to_float, from_float

namespace paratrain::cuda {
namespace {

void check_cublas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw Error("ERR_CUBLAS", std::string(what) + ": " + cublasLtGetStatusName(st) + " (" +
                                  cublasLtGetStatusString(st) + ")");
}

template <typename T>
constexpr cudaDataType_t data_type();
template <>
constexpr cudaDataType_t data_type<float>() { return CUDA_R_32F; }
template <>
constexpr cudaDataType_t data_type<__nv_bfloat16>() { return CUDA_R_16BF; }

uint32_t alignment_of(const void* p) {  // the largest power of two ≤ 256 dividing the address
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al >>= 1;
  return al;
}

// One row-major matmul (see the mapping above): C = alpha·op(A)·op(B) + beta·C, with an epilogue.
struct Matmul {
  bool trans_a, trans_b;
  int M, N, K;
  long lda, ldb, ldc;
  cudaDataType_t ab_type, c_type;
  cublasLtEpilogue_t epilogue;
  const void *A, *B;
  void* C;
  float beta;
  const void* bias;  // BIAS: input; BGRADB: output (void* in the descriptor either way)
  void* aux;         // GELU_AUX_BIAS: output pre-activation; DGELU: input
  long aux_ld;
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

using PlanKey = std::array<int64_t, 18>;

struct Context {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  float* bias_scratch = nullptr;  // max_bias floats; also used for bf16 (half of it)
  int max_bias = 0;
  bool tf32 = false;
  MatmulPrecision precision = MatmulPrecision::Fp32;  // of the float path
  std::map<PlanKey, Plan> plans;

  ~Context() {
    for (auto& kv : plans) {
      if (!kv.second.desc) continue;  // a cached miss
      cublasLtMatrixLayoutDestroy(kv.second.a);
      cublasLtMatrixLayoutDestroy(kv.second.b);
      cublasLtMatrixLayoutDestroy(kv.second.c);
      cublasLtMatmulDescDestroy(kv.second.desc);
    }
    device_free(workspace);
    device_free(bias_scratch);
    if (handle) cublasLtDestroy(handle);
  }
};

thread_local Context t_ctx;

Context& context() {
  if (!t_ctx.handle) linear_init();  // engines call linear_init up front; this is the safety net
  return t_ctx;
}

// Float inputs under precision bf16/fp16 are rounded to 16 bits inside cuBLASLt and multiplied on
// tensor cores, accumulating in fp32 (the FAST compute types); bf16 inputs always accumulate in fp32.
cublasComputeType_t compute_type(const Matmul& mm, const Context& ctx) {
  if (mm.ab_type != CUDA_R_32F) return CUBLAS_COMPUTE_32F;
  switch (ctx.precision) {
    case MatmulPrecision::Bf16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    case MatmulPrecision::Fp16: return CUBLAS_COMPUTE_32F_FAST_16F;
    default: return ctx.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  }
}

// The cached plan for mm computed in `compute`; nullptr when cuBLASLt has no algorithm for it and
// `may_miss` (the miss is cached too, as a plan without descriptors).
Plan* plan_for(Context& ctx, const Matmul& mm, cublasComputeType_t compute, bool may_miss);

// The plan for mm in the thread's precision; a reduced-precision shape or epilogue that cuBLASLt
// has no algorithm for falls back to plain fp32 compute (slower, never wrong) rather than failing.
Plan& plan_for(Context& ctx, const Matmul& mm) {
  const cublasComputeType_t compute = compute_type(mm, ctx);
  if (compute != CUBLAS_COMPUTE_32F)
    if (Plan* fast = plan_for(ctx, mm, compute, true)) return *fast;
  return *plan_for(ctx, mm, CUBLAS_COMPUTE_32F, false);
}

Plan* plan_for(Context& ctx, const Matmul& mm, cublasComputeType_t compute, bool may_miss) {
  const PlanKey key{mm.trans_a, mm.trans_b, mm.M, mm.N, mm.K, mm.lda, mm.ldb, mm.ldc, static_cast<int64_t>(mm.ab_type),
                    static_cast<int64_t>(mm.c_type), static_cast<int64_t>(mm.epilogue), mm.beta != 0.0f, mm.aux_ld,
                    static_cast<int64_t>(compute),
                    // the heuristic's choice depends on pointer alignment (A, B, C, bias/aux)
                    alignment_of(mm.A), alignment_of(mm.B), alignment_of(mm.C),
                    std::min(mm.bias ? alignment_of(mm.bias) : 256u, mm.aux ? alignment_of(mm.aux) : 256u)};
  auto it = ctx.plans.find(key);
  if (it != ctx.plans.end()) return it->second.desc ? &it->second : nullptr;

  Plan p;
  check_cublas(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_a = mm.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS A = our B
  const cublasOperation_t op_b = mm.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS B = our A
  check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a), "TRANSA");
  check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b), "TRANSB");
  const cublasLtEpilogue_t epilogue = mm.epilogue;
  check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue),
               "EPILOGUE");
  if (mm.bias) {
    const void* bias = mm.bias;
    check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
                 "BIAS_POINTER");
  }
  if (mm.aux) {
    void* aux = mm.aux;
    const int64_t ld = mm.aux_ld;
    check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux),
                 "EPILOGUE_AUX_POINTER");
    check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld),
                 "EPILOGUE_AUX_LD");
  }
  // Layouts: see the mapping at the top of the file.
  check_cublas(cublasLtMatrixLayoutCreate(&p.a, mm.ab_type, mm.trans_b ? mm.K : mm.N, mm.trans_b ? mm.N : mm.K, mm.ldb),
               "layout A");
  check_cublas(cublasLtMatrixLayoutCreate(&p.b, mm.ab_type, mm.trans_a ? mm.M : mm.K, mm.trans_a ? mm.K : mm.M, mm.lda),
               "layout B");
  check_cublas(cublasLtMatrixLayoutCreate(&p.c, mm.c_type, mm.N, mm.M, mm.ldc), "layout C");

  cublasLtMatmulPreference_t pref = nullptr;
  check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = ctx.workspace_bytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  const uint32_t al_a = alignment_of(mm.B), al_b = alignment_of(mm.A), al_c = alignment_of(mm.C);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(ctx.handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
    if (may_miss) {
      ctx.plans.emplace(key, Plan{});
      return nullptr;
    }
    throw Error("ERR_CUBLAS_UNSUPPORTED", "cuBLASLt has no algorithm for a " + std::to_string(mm.M) + "x" +
                                              std::to_string(mm.N) + "x" + std::to_string(mm.K) + " matmul with epilogue " +
                                              std::to_string(static_cast<int>(mm.epilogue)));
  }
  p.algo = result.algo;
  p.workspace = result.workspaceSize;
  return &ctx.plans.emplace(key, p).first->second;
}

void run(const Matmul& mm) {
  Context& ctx = context();
  Plan& p = plan_for(ctx, mm);
  // The pointers change from call to call (same alignment class as the plan's): set them again.
  if (mm.bias) {
    const void* bias = mm.bias;
    check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
                 "BIAS_POINTER");
  }
  if (mm.aux) {
    void* aux = mm.aux;
    check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux),
                 "EPILOGUE_AUX_POINTER");
  }
  const float alpha = 1.0f, beta = mm.beta;
  check_cublas(cublasLtMatmul(ctx.handle, p.desc, &alpha, /*A=*/mm.B, p.a, /*B=*/mm.A, p.b, &beta, mm.C, p.c, mm.C, p.c,
                              &p.algo, ctx.workspace, ctx.workspace_bytes, current_stream()),
               "cublasLtMatmul");
}

// db[O] += src[O]  (the BGRADB result, which cuBLASLt overwrites)
template <typename G>
__global__ void add_vector_kernel(G* __restrict__ db, const G* __restrict__ src, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) db[i] = from_float<G>(to_float(db[i]) + to_float(src[i]));
}

}  // namespace

void linear_init(size_t workspace_bytes, int max_bias) {
  Context& ctx = t_ctx;
  if (!ctx.handle) check_cublas(cublasLtCreate(&ctx.handle), "cublasLtCreate");
  if (workspace_bytes > ctx.workspace_bytes) {
    // Emptied before the allocation, so a failed one (ERR_CUDA_OOM) leaves no dangling pointer.
    device_free(ctx.workspace);
    ctx.workspace = nullptr;
    ctx.workspace_bytes = 0;
    for (auto& kv : ctx.plans) kv.second.workspace = 0;  // plans stay valid: the limit only grew
    ctx.workspace = device_alloc(workspace_bytes);
    ctx.workspace_bytes = workspace_bytes;
  }
  if (max_bias > ctx.max_bias) {
    device_free(ctx.bias_scratch);
    ctx.bias_scratch = nullptr;
    ctx.max_bias = 0;
    ctx.bias_scratch = static_cast<float*>(device_alloc(static_cast<size_t>(max_bias) * sizeof(float)));
    ctx.max_bias = max_bias;
  }
}

void linear_allow_tf32(bool allow) { context().tf32 = allow; }
void set_matmul_precision(MatmulPrecision p) { context().precision = p; }

template <typename T>
void linear_forward(T* out, const T* in, const T* W, const T* b, int N, int I, int O) {
  // out[N,O] = in[N,I] · W[O,I]ᵀ  → row-major gemm(trans_a = false, trans_b = true, M=N, N=O, K=I)
  run({false, true, N, O, I, I, I, O, data_type<T>(), data_type<T>(), b ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT,
       in, W, out, 0.0f, b, nullptr, 0});
}

template <typename T, typename G>
void linear_backward(T* din, G* dW, G* db, const T* dout, const T* in, const T* W, int N, int I, int O,
                     bool accumulate_din) {
  Context& ctx = context();
  // din[N,I] = dout[N,O] · W[O,I]  → gemm(false, false, M=N, N=I, K=O)
  if (din)
    run({false, false, N, I, O, O, I, I, data_type<T>(), data_type<T>(), CUBLASLT_EPILOGUE_DEFAULT, dout, W, din,
         accumulate_din ? 1.0f : 0.0f, nullptr, nullptr, 0});
  // dW[O,I] += dout[N,O]ᵀ · in[N,I]  → gemm(true, false, M=O, N=I, K=N); BGRADB: Σ_n dout[n,o]
  const bool fused_bias = db != nullptr;
  if (fused_bias && O > ctx.max_bias)
    throw Error("ERR_ARGUMENT", "linear_backward: O = " + std::to_string(O) + " exceeds linear_init's max_bias");
  G* bias_out = fused_bias ? reinterpret_cast<G*>(ctx.bias_scratch) : nullptr;
  run({true, false, O, I, N, O, I, I, data_type<T>(), data_type<G>(),
       fused_bias ? CUBLASLT_EPILOGUE_BGRADB : CUBLASLT_EPILOGUE_DEFAULT, dout, in, dW, 1.0f, bias_out, nullptr, 0});
  if (fused_bias) {
    add_vector_kernel<G><<<(O + 255) / 256, 256, 0, current_stream()>>>(db, bias_out, O);
    CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void linear_gelu_forward(T* out, T* pre, const T* in, const T* W, const T* b, int N, int I, int O) {
  if (O % 8 != 0 || !b) throw Error("ERR_ARGUMENT", "linear_gelu_forward: needs a bias and O % 8 == 0");
  run({false, true, N, O, I, I, I, O, data_type<T>(), data_type<T>(), CUBLASLT_EPILOGUE_GELU_AUX_BIAS, in, W, out, 0.0f,
       b, pre, O});
}

template <typename T>
void linear_backward_input_dgelu(T* din, const T* dout, const T* W, const T* pre, int N, int I, int O) {
  if (I % 8 != 0) throw Error("ERR_ARGUMENT", "linear_backward_input_dgelu: needs I % 8 == 0");
  run({false, false, N, I, O, O, I, I, data_type<T>(), data_type<T>(), CUBLASLT_EPILOGUE_DGELU, dout, W, din, 0.0f,
       nullptr, const_cast<T*>(pre), I});
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int, int, int);
template void linear_forward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
                                            const __nv_bfloat16*, int, int, int);
template void linear_backward<float, float>(float*, float*, float*, const float*, const float*, const float*, int, int,
                                            int, bool);
template void linear_backward<__nv_bfloat16, __nv_bfloat16>(__nv_bfloat16*, __nv_bfloat16*, __nv_bfloat16*,
                                                            const __nv_bfloat16*, const __nv_bfloat16*,
                                                            const __nv_bfloat16*, int, int, int, bool);
template void linear_backward<__nv_bfloat16, float>(__nv_bfloat16*, float*, float*, const __nv_bfloat16*,
                                                    const __nv_bfloat16*, const __nv_bfloat16*, int, int, int, bool);
template void linear_gelu_forward<float>(float*, float*, const float*, const float*, const float*, int, int, int);
template void linear_gelu_forward<__nv_bfloat16>(__nv_bfloat16*, __nv_bfloat16*, const __nv_bfloat16*,
                                                 const __nv_bfloat16*, const __nv_bfloat16*, int, int, int);
template void linear_backward_input_dgelu<float>(float*, const float*, const float*, const float*, int, int, int);
template void linear_backward_input_dgelu<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
                                                         const __nv_bfloat16*, int, int, int);

}  // namespace paratrain::cuda

#else
// No <cublasLt.h> here: nothing to compile. CMake adds this file only when PARATRAIN_CUBLASLT_FOUND.
#endif
