// tensor_parallel.h — Megatron's tensor-parallel pieces, in one home: the conjugate operators f and
// g, the row-parallel linear, and the vocabulary-parallel embedding, cross-entropy and sampling.
// Each takes the tensor-parallel group; with a group of one they reduce to the plain layers.
#pragma once
#include <cstdint>  // uint64_t

#include "../comm/communicator.h"  // Communicator
#include "../kernels/backend.h"    // linear_forward, embedding_*, vocab_parallel_* kernels
#include "spec.h"                  // VocabShard

namespace paratrain {

// g: the partial outputs of a row-parallel layer are summed over the group in the forward pass
// (identity backward). f: identity forward; the input gradient of a column-parallel layer is summed
// over the group in the backward pass. Both are one all-reduce; the names say where they sit.
inline void tp_reduce_forward(Communicator& tp, float* x, long n) {
  if (tp.size() > 1) tp.all_reduce_sum(x, static_cast<size_t>(n));
}
inline void tp_reduce_backward(Communicator& tp, float* dx, long n) {
  if (tp.size() > 1) tp.all_reduce_sum(dx, static_cast<size_t>(n));
}

// out[N,O] = in[N,Il]·W[O,Il]ᵀ summed over the group, + b once after the reduction.
void row_parallel_linear_forward(Communicator& tp, float* out, const float* in, const float* W, const float* b, int N,
                                 int Il, int O);

// out[B·T,E] = word[tokens] + position (+ segment), with `word` this rank's vocabulary rows: each
// rank looks up the tokens it owns (zero elsewhere), rank 0 adds positions/segments, one all-reduce.
void vocab_parallel_embedding_forward(Communicator& tp, const VocabShard& shard, float* out, const int* tokens,
                                      const int* segments, const float* word, const float* position,
                                      const float* segment, int B, int T, int E);
// dword (own rows only), dposition, dsegment += scatter of the replicated dout.
void vocab_parallel_embedding_backward(const VocabShard& shard, float* dword, float* dposition, float* dsegment,
                                       const float* dout, const int* tokens, const int* segments, int B, int T,
                                       int E);

// Softmax cross-entropy over logits[rows, Vl] that hold this rank's vocabulary columns; writes the
// gradient in place when grad_scale != 0. scratch: 3·rows floats (tp > 1); loss_scratch:
// loss_scratch_doubles(rows) doubles.
kernels::CrossEntropyResult vocab_parallel_cross_entropy(Communicator& tp, const VocabShard& shard, float* logits,
                                                         const int* labels, long rows, int ignore_index,
                                                         float grad_scale, float* scratch, double* loss_scratch);

// One token per row drawn from softmax(logits) by the Gumbel-max trick, with the noise of row r and
// global token v keyed by (row_keys[r], row_offsets[r] + v): every layout draws the same token.
// logits[rows, Vl] hold this rank's columns; scratch: 2·rows floats; out[rows] the global ids.
void vocab_parallel_sample(Communicator& tp, const VocabShard& shard, const float* logits, long rows,
                           const uint64_t* row_keys, const uint64_t* row_offsets, float* scratch, int* out);

}  // namespace paratrain
