// tensor_parallel.cpp — see tensor_parallel.h.
#include "tensor_parallel.h"

namespace paratrain {

using namespace kernels;

void row_parallel_linear_forward(Communicator& tp, float* out, const float* in, const float* W, const float* b, int N,
                                 int Il, int O) {
  if (tp.size() == 1) {
    linear_forward(out, in, W, b, N, Il, O);
    return;
  }
  linear_forward(out, in, W, static_cast<const float*>(nullptr), N, Il, O);
  tp_reduce_forward(tp, out, static_cast<long>(N) * O);
  if (b) add_bias_rows(out, b, N, O);
}

void vocab_parallel_embedding_forward(Communicator& tp, const VocabShard& shard, float* out, const int* tokens,
                                      const int* segments, const float* word, const float* position,
                                      const float* segment, int B, int T, int E) {
  if (tp.size() == 1) {
    embedding_forward(out, tokens, segments, word, position, segment, B, T, E);
    return;
  }
  const bool first = shard.tp_rank == 0;
  embedding_forward(out, tokens, segments, word, first ? position : nullptr, first ? segment : nullptr, B, T, E,
                    shard.start(), shard.valid());
  tp_reduce_forward(tp, out, static_cast<long>(B) * T * E);
}

void vocab_parallel_embedding_backward(const VocabShard& shard, float* dword, float* dposition, float* dsegment,
                                       const float* dout, const int* tokens, const int* segments, int B, int T,
                                       int E) {
  embedding_backward(dword, dposition, dsegment, dout, tokens, segments, B, T, E, shard.start(),
                     shard.tp_size == 1 ? shard.vocab : shard.valid());
}

kernels::CrossEntropyResult vocab_parallel_cross_entropy(Communicator& tp, const VocabShard& shard, float* logits,
                                                         const int* labels, long rows, int ignore_index,
                                                         float grad_scale, float* scratch, double* loss_scratch) {
  if (tp.size() == 1)
    return softmax_cross_entropy(logits, labels, rows, shard.vocab, ignore_index, grad_scale, loss_scratch);
  const int Vl = shard.local(), valid = shard.valid(), v0 = shard.start();
  float* row_max = scratch;            // [rows]
  float* sum_target = scratch + rows;  // [2·rows]
  vocab_parallel_row_max(logits, rows, Vl, valid, row_max);
  tp.all_reduce_max(row_max, static_cast<size_t>(rows));
  vocab_parallel_sum_exp(logits, labels, rows, Vl, valid, v0, ignore_index, row_max, sum_target, grad_scale != 0.0f);
  tp.all_reduce_sum(sum_target, static_cast<size_t>(2 * rows));
  return vocab_parallel_loss(logits, labels, rows, Vl, valid, v0, ignore_index, row_max, sum_target, grad_scale,
                             loss_scratch);
}

void vocab_parallel_sample(Communicator& tp, const VocabShard& shard, const float* logits, long rows,
                           const uint64_t* row_keys, const uint64_t* row_offsets, float* scratch, int* out) {
  const int Vl = shard.local(), valid = shard.valid(), v0 = shard.start();  // tp = 1: the whole vocabulary
  float* best = scratch;          // [rows] this rank's best perturbed logit, then the group's
  float* choice = scratch + rows;  // [rows] −(global id) of the best, for a max-reduction that picks the lowest id
  gumbel_argmax_rows(logits, rows, Vl, valid, v0, row_keys, row_offsets, best, out);
  if (tp.size() == 1) return;
  // The group's winner is the largest perturbed logit; an exact tie goes to the lowest id, as in
  // the single-process scan.
  copy(choice, best, rows);
  tp.all_reduce_max(best, static_cast<size_t>(rows));
  sample_choice_encode(choice, best, out, rows);
  tp.all_reduce_max(choice, static_cast<size_t>(rows));
  sample_choice_decode(out, choice, rows);
}

}  // namespace paratrain
