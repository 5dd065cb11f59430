// attention.cu — flash-style attention forward/backward (see attention.cuh for the contract).
//
// Work split (all fp32 arithmetic, inputs loaded as T and widened once into shared memory):
//   forward   block = 16 query rows of one (b, h), 4 warps × 4 rows; loops over key tiles of 32 keys
//             (K and V tiles in shared memory). Lane j scores key j of the tile; the warp reduces
//             the tile max / sum with shuffles and rescales its running (max, sum, acc) — the online
//             softmax. acc[x] is owned by lane x % 32. Output ctx = acc / sum and lse = max + log sum.
//   delta     one warp per row: Δ_i = dctx_i · ctx_i (= Σ_j P_ij·dP_ij, dropout included).
//   dK, dV    block = 32 keys of one (b, h); walks the query rows in batches of 8 (Q, dctx, lse, Δ
//             in shared memory). Phase 1: lane j recomputes P_ij and dS_ij for its key. Phase 2: each
//             thread owns fixed (key, column) accumulators of dK and dV in registers and adds the
//             batch's rows in order — deterministic, no atomics.
//   dQ        block = 8 query rows, 4 warps × 2 rows; loops over key tiles; lane j recomputes dS_ij,
//             then lane x % 32 accumulates dq[x] += Σ_j dS_ij·k_j[x].
// Shared-memory rows that lane j reads as a row (K, and V in backward) are padded to D+1 floats so
// the 32 lanes hit 32 different banks. Everything fits the 48 KiB of static shared memory at D=128.
//
// This is a first, CUDA-core version written for correctness; a tensor-core (mma/wgmma) version is
// the next step for speed (docs/cuda.md).
#include "attention.cuh"

#include <cuda_runtime.h>  // kernel launches

#include <cmath>    // std::sqrt, INFINITY
#include <string>   // std::string, std::to_string

#include "../../common/error.h"  // paratrain::Error
#include "../../common/rng.h"    // rng_uniform (PARATRAIN_HD: callable on the device)
#include "common.cuh"            // CUDA_CHECK_LAUNCH, current_stream, to_float, from_float, warp_sum, warp_max

namespace paratrain::cuda {
namespace attention_detail {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kKeyTile = 32;                            // keys per tile: one per lane
constexpr int kFwdRowsPerWarp = 4;                      // forward
constexpr int kFwdRows = kWarps * kFwdRowsPerWarp;      // 16 query rows per forward block
constexpr int kDqRowsPerWarp = 2;                       // dQ
constexpr int kDqRows = kWarps * kDqRowsPerWarp;        // 8 query rows per dQ block
constexpr int kKvBatch = 8;                             // query rows per batch in the dK/dV pass
constexpr int kKvRowsPerWarp = kKvBatch / kWarps;

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return to_float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = from_float<__nv_bfloat16>(v); }

// The CPU kernel's dropout draw (cpu/dropout.h dropout_scale): kept when uniform ≥ p, scaled 1/(1−p).
__device__ __forceinline__ float dropout_keep_scale(const AttentionShape& s, int bh, int i, int j) {
  const uint64_t index = (static_cast<uint64_t>(bh) * s.T + i) * static_cast<uint64_t>(s.T) + j;
  return rng_uniform(s.dropout_key, index) >= s.dropout ? 1.0f / (1.0f - s.dropout) : 0.0f;
}

// cpu::attention_key_visible, plus the tile's tail (j ≥ T) and the rows past T.
__device__ __forceinline__ bool key_visible(const AttentionShape& s, int b, int i, int j) {
  if (i >= s.T || j >= s.T) return false;
  if (s.causal && j > i) return false;
  return !s.key_mask || s.key_mask[static_cast<long>(b) * s.T + j] != 0;
}

// Rows [r0, r0 + rows) of one head's q (part 0), k (1) or v (2) into dst[rows][ld], zero past T.
template <typename T, int D>
__device__ __forceinline__ void load_rows(float* dst, int ld, const T* head_base, int part, int r0, int rows, int T_,
                                          int C3) {
  for (int e = threadIdx.x; e < rows * D; e += kThreads) {
    const int r = e / D, x = e % D, t = r0 + r;
    dst[r * ld + x] = t < T_ ? load(head_base + static_cast<long>(t) * C3 + part * (C3 / 3) + x) : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) forward_kernel(T* __restrict__ ctx, float* __restrict__ lse,
                                                           const T* __restrict__ qkv, AttentionShape s, float scale) {
  constexpr int kPerLane = D / 32;
  __shared__ float Qs[kFwdRows][D];
  __shared__ float Ks[kKeyTile][D + 1];
  __shared__ float Vs[kKeyTile][D];  // read as Vs[j][lane + 32t]: no padding needed
  __shared__ float Ps[kWarps][kKeyTile];

  const int bh = blockIdx.x, b = bh / s.heads, h = bh % s.heads;
  const int T_ = s.T, C = s.heads * D, C3 = 3 * C;
  const int q0 = blockIdx.y * kFwdRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* head = qkv + static_cast<long>(b) * T_ * C3 + h * D;

  load_rows<T, D>(&Qs[0][0], D, head, 0, q0, kFwdRows, T_, C3);

  float m[kFwdRowsPerWarp], l[kFwdRowsPerWarp], acc[kFwdRowsPerWarp][kPerLane];
  for (int r = 0; r < kFwdRowsPerWarp; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
    for (int t = 0; t < kPerLane; t++) acc[r][t] = 0.0f;
  }

  const int last_row = min(q0 + kFwdRows, T_) - 1;
  const int key_end = s.causal ? last_row + 1 : T_;
  for (int k0 = 0; k0 < key_end; k0 += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (first pass: Qs is written)
    load_rows<T, D>(&Ks[0][0], D + 1, head, 1, k0, kKeyTile, T_, C3);
    load_rows<T, D>(&Vs[0][0], D, head, 2, k0, kKeyTile, T_, C3);
    __syncthreads();
    const int key = k0 + lane;
    for (int r = 0; r < kFwdRowsPerWarp; r++) {
      const int qr = warp * kFwdRowsPerWarp + r, i = q0 + qr;
      if (i >= T_) break;  // warp-uniform
      const bool vis = key_visible(s, b, i, key);
      float score = -INFINITY;
      if (vis) {
        float dot = 0.0f;
#pragma unroll 16
        for (int x = 0; x < D; x++) dot += Qs[qr][x] * Ks[lane][x];
        score = dot * scale;
      }
      const float tile_max = warp_max(score);
      if (tile_max == -INFINITY) continue;  // warp-uniform: no key of this tile is visible to row i
      const float m_new = fmaxf(m[r], tile_max);
      float p = vis ? expf(score - m_new) : 0.0f;
      const float corr = expf(m[r] - m_new);  // 0 on the first visible tile (m = −inf)
      l[r] = l[r] * corr + warp_sum(p);
      m[r] = m_new;
      if (s.dropout > 0.0f && vis) p *= dropout_keep_scale(s, bh, i, key);
      Ps[warp][lane] = p;
      __syncwarp();
      for (int t = 0; t < kPerLane; t++) {
        const int x = lane + 32 * t;
        float a = acc[r][t] * corr;
#pragma unroll 8
        for (int j = 0; j < kKeyTile; j++) a += Ps[warp][j] * Vs[j][x];
        acc[r][t] = a;
      }
      __syncwarp();
    }
  }

  for (int r = 0; r < kFwdRowsPerWarp; r++) {
    const int i = q0 + warp * kFwdRowsPerWarp + r;
    if (i >= T_) break;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    T* out = ctx + (static_cast<long>(b) * T_ + i) * C + h * D;
    for (int t = 0; t < kPerLane; t++) store(out + lane + 32 * t, acc[r][t] * inv);
    if (lane == 0) lse[static_cast<long>(bh) * T_ + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : INFINITY;
  }
}

// ---------------------------------------------------------------------------------------------
// delta[bh, i] = Σ_x dctx[b, i, h·d + x] · ctx[b, i, h·d + x]; one warp per row.
template <typename T>
__global__ void __launch_bounds__(kThreads) delta_kernel(float* __restrict__ delta, const T* __restrict__ dctx,
                                                         const T* __restrict__ ctx, AttentionShape s) {
  const long row = static_cast<long>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const long rows = static_cast<long>(s.B) * s.heads * s.T;
  if (row >= rows) return;
  const int i = static_cast<int>(row % s.T);
  const long bh = row / s.T;
  const int b = static_cast<int>(bh / s.heads), h = static_cast<int>(bh % s.heads);
  const long off = (static_cast<long>(b) * s.T + i) * s.heads * s.head_dim + static_cast<long>(h) * s.head_dim;
  float sum = 0.0f;
  for (int x = lane; x < s.head_dim; x += 32) sum += load(dctx + off + x) * load(ctx + off + x);
  sum = warp_sum(sum);
  if (lane == 0) delta[row] = sum;
}

// ---------------------------------------------------------------------------------------------
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) dkv_kernel(T* __restrict__ dqkv, const T* __restrict__ dctx,
                                                       const T* __restrict__ qkv, const float* __restrict__ lse,
                                                       const float* __restrict__ delta, AttentionShape s, float scale) {
  constexpr int kOwned = kKeyTile * D / kThreads;  // accumulators per thread, per matrix
  __shared__ float Ks[kKeyTile][D + 1];
  __shared__ float Vs[kKeyTile][D + 1];
  __shared__ float Qs[kKvBatch][D];
  __shared__ float dOs[kKvBatch][D];
  __shared__ float Pt[kKvBatch][kKeyTile];   // dropped probabilities P̃_ij
  __shared__ float dSs[kKvBatch][kKeyTile];  // dS_ij = P_ij·(dP_ij − Δ_i)
  __shared__ float lse_s[kKvBatch], delta_s[kKvBatch];

  const int bh = blockIdx.x, b = bh / s.heads, h = bh % s.heads;
  const int T_ = s.T, C = s.heads * D, C3 = 3 * C;
  const int k0 = blockIdx.y * kKeyTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* head = qkv + static_cast<long>(b) * T_ * C3 + h * D;
  const T* dhead = dctx + static_cast<long>(b) * T_ * C + h * D;

  load_rows<T, D>(&Ks[0][0], D + 1, head, 1, k0, kKeyTile, T_, C3);
  load_rows<T, D>(&Vs[0][0], D + 1, head, 2, k0, kKeyTile, T_, C3);

  float dK[kOwned], dV[kOwned];
  for (int u = 0; u < kOwned; u++) dK[u] = dV[u] = 0.0f;

  const int key = k0 + lane;
  const int first_row = s.causal ? k0 : 0;  // under causal masking rows < k0 see none of these keys
  for (int i0 = first_row; i0 < T_; i0 += kKvBatch) {
    __syncthreads();  // the previous batch is consumed (first pass: K, V are written)
    for (int e = threadIdx.x; e < kKvBatch * D; e += kThreads) {
      const int r = e / D, x = e % D, i = i0 + r;
      Qs[r][x] = i < T_ ? load(head + static_cast<long>(i) * C3 + x) : 0.0f;
      dOs[r][x] = i < T_ ? load(dhead + static_cast<long>(i) * C + x) : 0.0f;
    }
    if (threadIdx.x < kKvBatch) {
      const int i = i0 + threadIdx.x;
      lse_s[threadIdx.x] = i < T_ ? lse[static_cast<long>(bh) * T_ + i] : INFINITY;
      delta_s[threadIdx.x] = i < T_ ? delta[static_cast<long>(bh) * T_ + i] : 0.0f;
    }
    __syncthreads();
    for (int rr = 0; rr < kKvRowsPerWarp; rr++) {  // phase 1: P̃ and dS for (row r, key lane)
      const int r = warp * kKvRowsPerWarp + rr, i = i0 + r;
      float p_dropped = 0.0f, ds = 0.0f;
      if (key_visible(s, b, i, key)) {
        float qk = 0.0f, dov = 0.0f;
#pragma unroll 16
        for (int x = 0; x < D; x++) {
          qk += Qs[r][x] * Ks[lane][x];
          dov += dOs[r][x] * Vs[lane][x];
        }
        const float p = expf(qk * scale - lse_s[r]);
        const float keep = s.dropout > 0.0f ? dropout_keep_scale(s, bh, i, key) : 1.0f;
        p_dropped = p * keep;
        ds = p * (dov * keep - delta_s[r]);
      }
      Pt[r][lane] = p_dropped;
      dSs[r][lane] = ds;
    }
    __syncthreads();
    for (int u = 0; u < kOwned; u++) {  // phase 2: fixed owner, fixed row order
      const int e = threadIdx.x + kThreads * u, j = e / D, x = e % D;
      float dk = dK[u], dv = dV[u];
#pragma unroll
      for (int r = 0; r < kKvBatch; r++) {
        dv += Pt[r][j] * dOs[r][x];
        dk += dSs[r][j] * Qs[r][x];
      }
      dK[u] = dk;
      dV[u] = dv;
    }
  }

  T* dhead_kv = dqkv + static_cast<long>(b) * T_ * C3 + h * D;
  for (int u = 0; u < kOwned; u++) {
    const int e = threadIdx.x + kThreads * u, j = e / D, x = e % D, t = k0 + j;
    if (t >= T_) continue;
    store(dhead_kv + static_cast<long>(t) * C3 + C + x, dK[u] * scale);
    store(dhead_kv + static_cast<long>(t) * C3 + 2 * C + x, dV[u]);
  }
}

// ---------------------------------------------------------------------------------------------
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) dq_kernel(T* __restrict__ dqkv, const T* __restrict__ dctx,
                                                      const T* __restrict__ qkv, const float* __restrict__ lse,
                                                      const float* __restrict__ delta, AttentionShape s, float scale) {
  constexpr int kPerLane = D / 32;
  __shared__ float Qs[kDqRows][D];
  __shared__ float dOs[kDqRows][D];
  __shared__ float Ks[kKeyTile][D + 1];
  __shared__ float Vs[kKeyTile][D + 1];
  __shared__ float dSs[kWarps][kKeyTile];

  const int bh = blockIdx.x, b = bh / s.heads, h = bh % s.heads;
  const int T_ = s.T, C = s.heads * D, C3 = 3 * C;
  const int q0 = blockIdx.y * kDqRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* head = qkv + static_cast<long>(b) * T_ * C3 + h * D;
  const T* dhead = dctx + static_cast<long>(b) * T_ * C + h * D;

  load_rows<T, D>(&Qs[0][0], D, head, 0, q0, kDqRows, T_, C3);
  for (int e = threadIdx.x; e < kDqRows * D; e += kThreads) {
    const int r = e / D, x = e % D, i = q0 + r;
    dOs[r][x] = i < T_ ? load(dhead + static_cast<long>(i) * C + x) : 0.0f;
  }
  float row_lse[kDqRowsPerWarp], row_delta[kDqRowsPerWarp], dq[kDqRowsPerWarp][kPerLane];
  for (int r = 0; r < kDqRowsPerWarp; r++) {
    const int i = q0 + warp * kDqRowsPerWarp + r;
    row_lse[r] = i < T_ ? lse[static_cast<long>(bh) * T_ + i] : INFINITY;
    row_delta[r] = i < T_ ? delta[static_cast<long>(bh) * T_ + i] : 0.0f;
    for (int t = 0; t < kPerLane; t++) dq[r][t] = 0.0f;
  }

  const int last_row = min(q0 + kDqRows, T_) - 1;
  const int key_end = s.causal ? last_row + 1 : T_;
  for (int k0 = 0; k0 < key_end; k0 += kKeyTile) {
    __syncthreads();
    load_rows<T, D>(&Ks[0][0], D + 1, head, 1, k0, kKeyTile, T_, C3);
    load_rows<T, D>(&Vs[0][0], D + 1, head, 2, k0, kKeyTile, T_, C3);
    __syncthreads();
    const int key = k0 + lane;
    for (int r = 0; r < kDqRowsPerWarp; r++) {
      const int qr = warp * kDqRowsPerWarp + r, i = q0 + qr;
      const bool vis = key_visible(s, b, i, key);
      if (!__any_sync(0xffffffffu, vis)) continue;  // warp-uniform
      float ds = 0.0f;
      if (vis) {
        float qk = 0.0f, dov = 0.0f;
#pragma unroll 16
        for (int x = 0; x < D; x++) {
          qk += Qs[qr][x] * Ks[lane][x];
          dov += dOs[qr][x] * Vs[lane][x];
        }
        const float p = expf(qk * scale - row_lse[r]);
        const float keep = s.dropout > 0.0f ? dropout_keep_scale(s, bh, i, key) : 1.0f;
        ds = p * (dov * keep - row_delta[r]);
      }
      dSs[warp][lane] = ds;
      __syncwarp();
      for (int t = 0; t < kPerLane; t++) {
        const int x = lane + 32 * t;
        float a = dq[r][t];
#pragma unroll 8
        for (int j = 0; j < kKeyTile; j++) a += dSs[warp][j] * Ks[j][x];
        dq[r][t] = a;
      }
      __syncwarp();
    }
  }

  for (int r = 0; r < kDqRowsPerWarp; r++) {
    const int i = q0 + warp * kDqRowsPerWarp + r;
    if (i >= T_) break;
    T* out = dqkv + (static_cast<long>(b) * T_ + i) * C3 + h * D;
    for (int t = 0; t < kPerLane; t++) store(out + lane + 32 * t, dq[r][t] * scale);
  }
}

// ---------------------------------------------------------------------------------------------
inline void check_shape(const AttentionShape& s) {
  if (s.B <= 0 || s.T <= 0 || s.heads <= 0)
    throw Error("ERR_ARGUMENT", "attention: B, T and heads must be positive");
  if (!attention_supports_head_dim(s.head_dim))
    throw Error("ERR_ARGUMENT", "attention (CUDA): head_dim " + std::to_string(s.head_dim) +
                                    " is not supported; supported: 32, 64, 96, 128");
  if (static_cast<long>(s.B) * s.heads > 2147483647L)
    throw Error("ERR_ARGUMENT", "attention (CUDA): B·heads exceeds the grid limit");
  if (s.dropout < 0.0f || s.dropout >= 1.0f)
    throw Error("ERR_ARGUMENT", "attention: dropout must lie in [0, 1)");
}

inline float softmax_scale(int d) { return 1.0f / std::sqrt(static_cast<float>(d)); }  // as the CPU kernel

inline dim3 attention_grid(const AttentionShape& s, int rows_per_block) {
  return dim3(static_cast<unsigned>(s.B * s.heads), static_cast<unsigned>((s.T + rows_per_block - 1) / rows_per_block));
}

template <typename T, int D>
void forward_launch(T* ctx, float* lse, const T* qkv, const AttentionShape& s) {
  forward_kernel<T, D><<<attention_grid(s, kFwdRows), kThreads, 0, current_stream()>>>(ctx, lse, qkv, s, softmax_scale(D));
  CUDA_CHECK_LAUNCH();
}

template <typename T, int D>
void backward_launch(T* dqkv, const T* dctx, const T* qkv, const float* lse, const float* delta,
                     const AttentionShape& s) {
  dkv_kernel<T, D><<<attention_grid(s, kKeyTile), kThreads, 0, current_stream()>>>(dqkv, dctx, qkv, lse, delta, s, softmax_scale(D));
  CUDA_CHECK_LAUNCH();
  dq_kernel<T, D><<<attention_grid(s, kDqRows), kThreads, 0, current_stream()>>>(dqkv, dctx, qkv, lse, delta, s, softmax_scale(D));
  CUDA_CHECK_LAUNCH();
}

}  // namespace attention_detail

bool attention_supports_head_dim(int d) { return d == 32 || d == 64 || d == 96 || d == 128; }

template <typename T>
void attention_forward(T* ctx, float* lse, const T* qkv, const AttentionShape& s) {
  using namespace attention_detail;
  check_shape(s);
  switch (s.head_dim) {
    case 32: return forward_launch<T, 32>(ctx, lse, qkv, s);
    case 64: return forward_launch<T, 64>(ctx, lse, qkv, s);
    case 96: return forward_launch<T, 96>(ctx, lse, qkv, s);
    case 128: return forward_launch<T, 128>(ctx, lse, qkv, s);
  }
}

template <typename T>
void attention_backward(T* dqkv, const T* dctx, const T* qkv, const T* ctx, const float* lse, const AttentionShape& s,
                        float* delta) {
  using namespace attention_detail;
  check_shape(s);
  const long rows = static_cast<long>(s.B) * s.heads * s.T;
  delta_kernel<T><<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kThreads, 0, current_stream()>>>(delta, dctx, ctx, s);
  CUDA_CHECK_LAUNCH();
  switch (s.head_dim) {
    case 32: return backward_launch<T, 32>(dqkv, dctx, qkv, lse, delta, s);
    case 64: return backward_launch<T, 64>(dqkv, dctx, qkv, lse, delta, s);
    case 96: return backward_launch<T, 96>(dqkv, dctx, qkv, lse, delta, s);
    case 128: return backward_launch<T, 128>(dqkv, dctx, qkv, lse, delta, s);
  }
}

template void attention_forward<float>(float*, float*, const float*, const AttentionShape&);
template void attention_forward<__nv_bfloat16>(__nv_bfloat16*, float*, const __nv_bfloat16*, const AttentionShape&);
template void attention_backward<float>(float*, const float*, const float*, const float*, const float*,
                                        const AttentionShape&, float*);
template void attention_backward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
                                                const __nv_bfloat16*, const float*, const AttentionShape&, float*);

}  // namespace paratrain::cuda
