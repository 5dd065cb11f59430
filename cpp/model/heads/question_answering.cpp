// question_answering.cpp — see question_answering.h. Shapes: B sequences of T tokens, N = B·T,
// H the stack's hidden size.
#include "question_answering.h"

namespace paratrain {

using namespace kernels;

QuestionAnsweringHead::QuestionAnsweringHead(const ModelSpec& spec, int index, ParamLayout& layout)
    : Head(spec.heads[static_cast<size_t>(index)], index) {
  hidden_ = spec.stacks[static_cast<size_t>(spec_.stack)].hidden;
  w_.index = layout.add(spec_.prefix + ".weight", {2, hidden_}, -1, true, spec.init_std);
  b_.index = layout.add(spec_.prefix + ".bias", {2}, -1, false, 0);
}

void QuestionAnsweringHead::allocate(int batch, int seq, int) {
  const long N = static_cast<long>(batch) * seq;
  logits_.assign(N * 2, 0);
  d_logits_.assign(N * 2, 0);
  start_.assign(N, 0);
  end_.assign(N, 0);
  loss_scratch_.assign(loss_scratch_doubles(batch), 0);
}

void QuestionAnsweringHead::bind(const ParamLayout& layout, float* params, float* grads) {
  w_.bind(layout, params, grads);
  b_.bind(layout, params, grads);
}

HeadLoss QuestionAnsweringHead::forward(const PassContext& ctx, Stack& stack, SampledTokens&, double*) {
  const int B = ctx.mb.batch, T = ctx.mb.seq, N = ctx.rows();
  linear_forward(logits_.data(), stack.top(), w_.w, b_.w, N, hidden_, 2);  // [N, 2]
  have_targets_ = ctx.mb.start_positions != nullptr && ctx.mb.end_positions != nullptr;
  if (!have_targets_) return {};
  split_pairs(start_.data(), end_.data(), logits_.data(), N);  // [N, 2] → start [B, T], end [B, T]
  const long count = count_targets(ctx.mb.host.start_positions, B, kIgnoreIndex);
  // loss = (CE(start) + CE(end)) / 2, each a mean over the answered sequences.
  const float scale =
      ctx.opt.training && count > 0 ? spec_.weight * ctx.opt.grad_scale * 0.5f / static_cast<float>(count) : 0.0f;
  const CrossEntropyResult s = softmax_cross_entropy(start_.data(), ctx.mb.start_positions, B, T, kIgnoreIndex, scale,
                                                     loss_scratch_.data());
  const CrossEntropyResult e =
      softmax_cross_entropy(end_.data(), ctx.mb.end_positions, B, T, kIgnoreIndex, scale, loss_scratch_.data());
  if (s.count == 0) return {};
  return {0.5 * (s.loss_sum / s.count + e.loss_sum / e.count), s.count};
}

void QuestionAnsweringHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  if (!have_targets_) return;
  const int N = ctx.rows();
  join_pairs(d_logits_.data(), start_.data(), end_.data(), N);
  // The head and its input are replicated over the tensor-parallel group: no reduction.
  const bool first = stack.claim_d_top();
  linear_backward(stack.d_top(), w_.g, b_.g, d_logits_.data(), stack.top(), w_.w, N, hidden_, 2, !first);
}

}  // namespace paratrain
