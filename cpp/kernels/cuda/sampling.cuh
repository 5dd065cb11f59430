// sampling.cuh — CUDA twin of cpu/sampling.h: a token per row of logits by the Gumbel-max trick.
// Same arguments and meaning, device pointers, on current_stream(). The noise is the CPU's bit for
// bit (rng_open_uniform and fast_log are shared host/device code, evaluated without FMA
// contraction), so for float logits the chosen ids equal the CPU's; ties go to the lowest id.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16
#include <cstdint>      // uint64_t

namespace paratrain::cuda {

// For each row r of logits[rows, V] (the first `valid` columns are real, their global ids v0 + v):
// best[r] = max_v logits[r,v] + g(keys[r], offsets[r] + v0 + v) and index[r] = the global id of the
// first maximum (-1 when the row has no real column), g = −ln(−ln u) with u = rng_open_uniform.
// bf16: the sum is formed in float (as the CPU on the same values), best[r] rounded to bf16 last.
template <typename T>
void gumbel_argmax_rows(const T* logits, long rows, int V, int valid, int v0, const uint64_t* keys,
                        const uint64_t* offsets, T* best, int* index);

}  // namespace paratrain::cuda
