// cross_entropy.cuh — CUDA twin of cpu/cross_entropy.h: fused softmax cross-entropy (loss and the
// logit gradient in place), the three vocabulary-parallel passes and binary cross-entropy.
// Same arguments and meaning, pointers are device pointers, plus one trailing argument for the
// functions that return a result: `scratch`, device memory owned by the caller (allocated once, with
// the activations): cross_entropy_scratch_doubles(rows) doubles for the softmax losses,
// loss_scratch_doubles(rows) (tensor_ops.cuh, enough for all of them) for binary_cross_entropy.
// Those functions copy their figures back and so synchronise the current stream.
#pragma once
#include <cuda_bf16.h>  // __nv_bfloat16
#include <cstdint>      // uint8_t

#include "../cpu/cross_entropy.h"  // CrossEntropyResult, BinaryResult (one definition for both kernel sets)

namespace paratrain::cuda {

using cpu::BinaryResult;
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

// Binary cross-entropy with logits[rows] over the rows whose mask is set (null: every row), labels
// 0/1; grad[r] = grad_scale·(σ(x) − y) when grad_scale != 0 (unmasked rows: 0). The five figures are
// reduced in a fixed order. scratch: loss_scratch_doubles(rows) doubles (any rows: it is fixed-size).
template <typename T>
BinaryResult binary_cross_entropy(const T* logits, const uint8_t* labels, const uint8_t* mask, long rows,
                                  T grad_scale, T* grad, double* scratch);

}  // namespace paratrain::cuda
