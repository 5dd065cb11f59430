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
  if (!b) return;
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++)
    for (int o = 0; o < O; o++) out[n * O + o] += b[o];
}

void vocab_parallel_embedding_forward(Communicator& tp, const ModelConfig& cfg, float* out, const int* tokens,
                                      const int* segments, const float* word, const float* position,
                                      const float* segment, int B, int T) {
  const int H = cfg.hidden;
  if (tp.size() == 1) {
    embedding_forward(out, tokens, segments, word, position, segment, B, T, H);
    return;
  }
  const bool first = cfg.tp_rank == 0;
  embedding_forward(out, tokens, segments, word, first ? position : nullptr, first ? segment : nullptr, B, T, H,
                    cfg.vocab_start(), cfg.local_vocab_valid());
  tp_reduce_forward(tp, out, static_cast<long>(B) * T * H);
}

void vocab_parallel_embedding_backward(const ModelConfig& cfg, float* dword, float* dposition, float* dsegment,
                                       const float* dout, const int* tokens, const int* segments, int B, int T) {
  embedding_backward(dword, dposition, dsegment, dout, tokens, segments, B, T, cfg.hidden, cfg.vocab_start(),
                     cfg.tp_size == 1 ? cfg.vocab : cfg.local_vocab_valid());
}

kernels::CrossEntropyResult vocab_parallel_cross_entropy(Communicator& tp, const ModelConfig& cfg, float* logits,
                                                     const int* labels, long rows, int ignore_index,
                                                     float grad_scale, float* scratch) {
  if (tp.size() == 1) return softmax_cross_entropy(logits, labels, rows, cfg.vocab, ignore_index, grad_scale);
  const int Vl = cfg.local_vocab(), valid = cfg.local_vocab_valid(), v0 = cfg.vocab_start();
  float* row_max = scratch;          // [rows]
  float* sum_target = scratch + rows;  // [2·rows]
  vocab_parallel_row_max(logits, rows, Vl, valid, row_max);
  tp.all_reduce_max(row_max, static_cast<size_t>(rows));
  vocab_parallel_sum_exp(logits, labels, rows, Vl, valid, v0, ignore_index, row_max, sum_target, grad_scale != 0.0f);
  tp.all_reduce_sum(sum_target, static_cast<size_t>(2 * rows));
  return vocab_parallel_loss(logits, labels, rows, Vl, valid, v0, ignore_index, row_max, sum_target, grad_scale);
}

}  // namespace paratrain
