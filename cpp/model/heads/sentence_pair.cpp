// sentence_pair.cpp — see sentence_pair.h. Shapes: B sequences, H the stack's hidden size.
#include "sentence_pair.h"

namespace paratrain {

using namespace kernels;

SentencePairHead::SentencePairHead(const ModelSpec& spec, int index, ParamLayout& layout)
    : Head(spec.heads[static_cast<size_t>(index)], index) {
  hidden_ = spec.stacks[static_cast<size_t>(spec_.stack)].hidden;
  w_.index = layout.add(spec_.prefix + ".weight", {2, hidden_}, -1, true, spec.init_std);
  b_.index = layout.add(spec_.prefix + ".bias", {2}, -1, false, 0);
}

void SentencePairHead::allocate(int batch, int, int) {
  logits_.assign(static_cast<long>(batch) * 2, 0);
  loss_scratch_.assign(loss_scratch_doubles(batch), 0);
}

void SentencePairHead::bind(const ParamLayout& layout, float* params, float* grads) {
  w_.bind(layout, params, grads);
  b_.bind(layout, params, grads);
}

HeadLoss SentencePairHead::forward(const PassContext& ctx, Stack& stack, SampledTokens&, double*) {
  const int B = ctx.mb.batch;
  linear_forward(logits_.data(), stack.pooled(), w_.w, b_.w, B, hidden_, 2);  // [B,2]
  if (!ctx.mb.pair_labels) return {};
  const float scale = ctx.opt.training ? spec_.weight * ctx.opt.grad_scale / static_cast<float>(B) : 0.0f;
  const CrossEntropyResult ce =
      softmax_cross_entropy(logits_.data(), ctx.mb.pair_labels, B, 2, kIgnoreIndex, scale, loss_scratch_.data());
  return {ce.count > 0 ? ce.loss_sum / ce.count : 0.0, ce.count};
}

void SentencePairHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  if (!ctx.mb.pair_labels) return;
  const bool first = stack.claim_d_pooled();
  linear_backward(stack.d_pooled(), w_.g, b_.g, logits_.data(), stack.pooled(), w_.w, ctx.mb.batch, hidden_, 2,
                  !first);
}

}  // namespace paratrain
