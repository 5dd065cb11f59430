// embedding.cuh — CUDA twin of cpu/embedding.h (token + position (+ segment) embeddings).
// Same arguments and meaning; pointers (tokens and segments too) are device pointers.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16
#include <climits>      // INT_MAX

namespace paratrain::cuda {

// out[B·T,H] = word[tokens − vocab_start] (0 outside [0, vocab_rows)) + position[t] (+ segment[segments]).
// position and segment may be null.
template <typename T>
void embedding_forward(T* out, const int* tokens, const int* segments, const T* word, const T* position,
                       const T* segment, int B, int T_, int H, int vocab_start = 0, int vocab_rows = INT_MAX);

// dword, dposition, dsegment += scatter of dout[B·T,H]. Deterministic: every output element is
// owned by one thread, which adds its tokens in position order (the CPU kernel's order).
// dposition and dsegment may be null.
template <typename T>
void embedding_backward(T* dword, T* dposition, T* dsegment, const T* dout, const int* tokens, const int* segments,
                        int B, int T_, int H, int vocab_start = 0, int vocab_rows = INT_MAX);

}  // namespace paratrain::cuda
