// replaced_token.cpp — see replaced_token.h. Shapes: N = B·T rows, H the stack's hidden size.
#include "replaced_token.h"

namespace paratrain {

using namespace kernels;

ReplacedTokenHead::ReplacedTokenHead(const ModelSpec& spec, int index, ParamLayout& layout)
    : Head(spec.heads[static_cast<size_t>(index)], index), model_(spec) {
  hidden_ = spec.stacks[static_cast<size_t>(spec_.stack)].hidden;
  const int64_t H = hidden_;
  const std::string p = spec_.prefix + ".";
  dense_w_.index = layout.add(p + "dense.weight", {H, H}, -1, true, spec.init_std);
  dense_b_.index = layout.add(p + "dense.bias", {H}, -1, false, 0);
  out_w_.index = layout.add(p + "out.weight", {1, H}, -1, true, spec.init_std);
  out_b_.index = layout.add(p + "out.bias", {1}, -1, false, 0);
}

std::vector<std::string> ReplacedTokenHead::metric_names() const {
  return {spec_.loss + "_accuracy", spec_.loss + "_replaced_accuracy", spec_.loss + "_original_accuracy"};
}

void ReplacedTokenHead::allocate(int batch, int seq, int) {
  const long N = static_cast<long>(batch) * seq;
  for (auto* b : {&dense_, &act_, &d_act_}) b->assign(N * hidden_, 0);
  logits_.assign(N, 0);
  d_logits_.assign(N, 0);
  loss_scratch_.assign(loss_scratch_doubles(N), 0);
}

void ReplacedTokenHead::bind(const ParamLayout& layout, float* params, float* grads) {
  for (Param* p : {&dense_w_, &dense_b_, &out_w_, &out_b_}) p->bind(layout, params, grads);
}

HeadLoss ReplacedTokenHead::forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) {
  const int N = ctx.rows(), H = hidden_;
  linear_forward(dense_.data(), stack.top(), dense_w_.w, dense_b_.w, N, H, H);
  gelu_forward(act_.data(), dense_.data(), static_cast<long>(N) * H, model_.gelu);
  linear_forward(logits_.data(), act_.data(), out_w_.w, out_b_.w, N, H, 1);  // [N,1]
  const uint8_t* mask = ctx.mb.key_mask;
  const uint8_t* host_mask = ctx.mb.host.key_mask;
  long real = N;
  if (host_mask) {
    real = 0;
    for (int n = 0; n < N; n++) real += host_mask[n] != 0;
  }
  const float scale =
      ctx.opt.training && real > 0 ? spec_.weight * ctx.opt.grad_scale / static_cast<float>(real) : 0.0f;
  const BinaryResult r =
      binary_cross_entropy(logits_.data(), sampled.replaced.data(), mask, N, scale, d_logits_.data(),
                           loss_scratch_.data());
  // (numerator, denominator) per metric: all positions, replaced ones, original ones.
  metrics[0] += static_cast<double>(r.correct);
  metrics[1] += static_cast<double>(r.count);
  metrics[2] += static_cast<double>(r.true_positives);
  metrics[3] += static_cast<double>(r.positives);
  metrics[4] += static_cast<double>(r.correct - r.true_positives);
  metrics[5] += static_cast<double>(r.count - r.positives);
  return {r.count > 0 ? r.loss_sum / r.count : 0.0, r.count};
}

void ReplacedTokenHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  const int N = ctx.rows(), H = hidden_;
  linear_backward(d_act_.data(), out_w_.g, out_b_.g, d_logits_.data(), act_.data(), out_w_.w, N, H, 1, false);
  gelu_backward(d_act_.data(), d_act_.data(), dense_.data(), static_cast<long>(N) * H, model_.gelu);
  // The head and its input are replicated over the tensor-parallel group: no reduction.
  const bool first = stack.claim_d_top();
  linear_backward(stack.d_top(), dense_w_.g, dense_b_.g, d_act_.data(), stack.top(), dense_w_.w, N, H, H, !first);
}

}  // namespace paratrain
