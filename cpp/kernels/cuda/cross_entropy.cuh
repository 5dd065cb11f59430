// cross_entropy.cuh — CUDA twin of cpu/cross_entropy.h: fused softmax cross-entropy (loss and the
// logit gradient in place) and the three vocabulary-parallel passes.
// Same arguments and meaning, pointers are device pointers, plus one trailing argument for the
// functions that return a CrossEntropyResult: `scratch`, device memory of
// cross_entropy_scratch_doubles(rows) doubles owned by the caller (allocated once, with the
// activations). Those two functions copy two numbers back and so synchronise the current stream.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16

#include "../cpu/cross_entropy.h"  // CrossEntropyResult (one definition for both kernel sets)

namespace paratrain::cuda {

using cpu::CrossEntropyResult;

inline long cross_entropy_scratch_doubles(long rows) { return rows + 2; }

// logits[rows,V]; when grad_scale != 0 the rows become grad_scale·(softmax − onehot) (ignored rows: 0).
template <typename T>
CrossEntropyResult softmax_cross_entropy(T* logits, const int* labels, long rows, int V, int ignore_index,
                                         T grad_scale, double* scratch);

// Pass 1: row_max[r] = max over this rank's real columns [0, valid) (−∞ when it has none).
template <typename T>
void vocab_parallel_row_max(const T* logits, long rows, int Vl, int valid, T* row_max);

// Pass 2 (row_max global): sum_target[r] = Σ exp(x − max) over the real columns, sum_target[rows + r]
// = the label's logit when this rank holds it, else 0. keep_exp leaves the exponentials in place.
template <typename T>
void vocab_parallel_sum_exp(T* logits, const int* labels, long rows, int Vl, int valid, int vocab_start,
                            int ignore_index, const T* row_max, T* sum_target, bool keep_exp);

// Pass 3 (sums and targets global): the loss, and with grad_scale != 0 the gradient in place
// (needs pass 2 with keep_exp).
template <typename T>
CrossEntropyResult vocab_parallel_loss(T* logits, const int* labels, long rows, int Vl, int valid, int vocab_start,
                                       int ignore_index, const T* row_max, const T* sum_target, T grad_scale,
                                       double* scratch);

}  // namespace paratrain::cuda
