// attention.cuh — flash-style multi-head self-attention on the GPU: the twin of cpu/attention.h.
//
// Same layout and semantics as the CPU kernel: qkv[B,T,3C] holds q | k | v along the last axis
// (C = heads·head_dim, head h at columns h·d), ctx[B,T,C]; an optional key-padding mask (1 = real
// token) and/or causal masking; masked keys get probability exactly 0; attention-probability
// dropout draws element (b·heads + h, i, j) of stream `dropout_key` at counter
// ((b·heads + h)·T + i)·T + j — the CPU kernel's index — so both kernels drop the same entries.
//
// Why the signatures differ from the CPU twin: the CPU kernel stores the T×T probabilities and
// needs T×T scratch per thread; at seq 1024 that is B·heads·T² values per layer, the largest
// activation of the model. This kernel never writes scores or probabilities to global memory:
// forward keeps a running max and sum per query row (online softmax over key tiles held in shared
// memory) and saves only the row's logsumexp `lse[B,heads,T]`; backward recomputes the scores from
// q, k and lse (FlashAttention-2). So:
//   forward:  `probs` [B,heads,T,T] → `lse` [B,heads,T] (float), and no scratch;
//   backward: `probs` → `lse`, plus `ctx` (the forward output, for Δ_i = dctx_i·ctx_i) and a float
//             scratch `delta` [B,heads,T].
// The model calls these through the kernel set (cpp/kernels/backend.h), so its CUDA build keeps an
// lse buffer where the CPU build keeps probs.
//
// Determinism: no atomics. Backward runs one pass over key tiles (dK, dV: each block owns its keys
// and walks all query rows in a fixed order) and one pass over query tiles (dQ), so every result is
// bitwise reproducible run to run.
//
// Types: float and __nv_bfloat16 storage, fp32 arithmetic throughout. head_dim ∈ {32, 64, 96, 128}
// (static dispatch; anything else throws ERR_ARGUMENT). Pointers are device pointers except
// `s.key_mask`, which is a device pointer too ([B,T] uint8) in this build. Kernels run on
// paratrain::cuda::current_stream().
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16
#include <cstdint>      // uint8_t, uint64_t

namespace paratrain::cuda {

// Field for field cpu::AttentionShape (the model aggregate-initialises it unqualified), declared
// again here so the CUDA library does not pull in the CPU kernels and their CBLAS header.
struct AttentionShape {
  int B, T, heads, head_dim;
  bool causal;
  const uint8_t* key_mask;  // [B,T] device pointer, or null
  float dropout;            // on probabilities
  uint64_t dropout_key;
};

// ctx[B,T,C] = softmax(mask(q·kᵀ/√d)) ⊙ dropout · v;  lse[B,heads,T] = log Σ_j e^{s_ij} per row
// (+inf for a row that sees no key; its ctx row is 0, as on the CPU).
template <typename T>
void attention_forward(T* ctx, float* lse, const T* qkv, const AttentionShape& s);

// dqkv[B,T,3C] = ∂L/∂qkv (overwritten) from dctx[B,T,C], the forward's qkv, ctx and lse.
// delta[B,heads,T]: float scratch (Δ_i = Σ_x dctx_i[x]·ctx_i[x]).
template <typename T>
void attention_backward(T* dqkv, const T* dctx, const T* qkv, const T* ctx, const float* lse,
                        const AttentionShape& s, float* delta);

// The unified contract the model calls on either backend (cpu/attention.h has the same three):
// what forward keeps for backward — here the lse, B·heads·T floats — and backward's scratch — here
// delta, B·heads·T floats (`threads` is the CPU's per-thread count: unused here).
inline long attention_saved_floats(const AttentionShape& s) { return static_cast<long>(s.B) * s.heads * s.T; }
inline long attention_scratch_floats(const AttentionShape& s, int /*threads*/) {
  return static_cast<long>(s.B) * s.heads * s.T;
}
// Forward with the CPU's five arguments: `saved` is the lse; `scratch` is unused (forward needs none).
template <typename T>
void attention_forward(T* ctx, float* saved, const T* qkv, const AttentionShape& s, float* /*scratch*/) {
  attention_forward(ctx, saved, qkv, s);
}

// Head sizes this build supports (for config validation before anything is allocated).
bool attention_supports_head_dim(int head_dim);

}  // namespace paratrain::cuda
