// causal_lm.cpp — see causal_lm.h. Shapes: N = B·T rows, H hidden, Vl this rank's vocabulary columns.
#include "causal_lm.h"

#include "../tensor_parallel.h"  // vocab_parallel_cross_entropy, tp_reduce_backward

namespace paratrain {

using namespace kernels;

CausalLmHead::CausalLmHead(const ModelSpec& spec, int index, const Embeddings& embeddings)
    : Head(spec.heads[static_cast<size_t>(index)], index), model_(spec), embeddings_(embeddings) {
  hidden_ = spec.stacks[static_cast<size_t>(spec_.stack)].hidden;
}

void CausalLmHead::allocate(int batch, int seq, int) {
  const long N = static_cast<long>(batch) * seq;
  logits_.assign(N * model_.vocab_shard().local(), 0);
  ce_scratch_.assign(model_.tp_size > 1 ? 3 * N : 0, 0);
  loss_scratch_.assign(loss_scratch_doubles(N), 0);
  // Its own ∂top only when another head of the same stack may have written the stack's first.
  int heads_on_stack = 0;
  for (const HeadSpec& h : model_.heads) heads_on_stack += h.stack == spec_.stack;
  d_own_.assign(heads_on_stack > 1 ? N * hidden_ : 0, 0);
}

HeadLoss CausalLmHead::forward(const PassContext& ctx, Stack& stack, SampledTokens&, double*) {
  const int N = ctx.rows(), Vl = model_.vocab_shard().local();
  rows_ = N;
  linear_forward(logits_.data(), stack.top(), embeddings_.word().w, static_cast<const float*>(nullptr), N, hidden_,
                 Vl);
  const long targets = count_targets(ctx.mb.host.labels, N, kIgnoreIndex);
  const float scale =
      ctx.opt.training && targets > 0 ? spec_.weight * ctx.opt.grad_scale / static_cast<float>(targets) : 0.0f;
  const CrossEntropyResult ce = vocab_parallel_cross_entropy(ctx.tp, model_.vocab_shard(), logits_.data(),
                                                             ctx.mb.labels, N, kIgnoreIndex, scale, ce_scratch_.data(),
                                                             loss_scratch_.data());
  return {ce.count > 0 ? ce.loss_sum / ce.count : 0.0, ce.count};
}

void CausalLmHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  const int N = ctx.rows(), Vl = model_.vocab_shard().local();
  const long NH = static_cast<long>(N) * hidden_;
  // dtop = dlogits·E (partial over the vocabulary shards: f's all-reduce), dE += dlogitsᵀ·top.
  const bool first = stack.claim_d_top();
  float* d = stack.d_top();
  if (!first) {  // another head wrote ∂top already: reduce this head's part on its own, then add
    d = d_own_.data();  // sized by allocate() for the largest batch
  }
  linear_backward(d, embeddings_.word().g, static_cast<float*>(nullptr), logits_.data(), stack.top(),
                  embeddings_.word().w, N, hidden_, Vl, false);
  tp_reduce_backward(ctx.tp, d, NH);
  if (!first) add_into(stack.d_top(), d, NH);
}

}  // namespace paratrain
