// token_classification.cpp — see token_classification.h. Shapes: N = B·T rows, H the stack's
// hidden size, C the labels.
#include "token_classification.h"

namespace paratrain {

using namespace kernels;

TokenClassificationHead::TokenClassificationHead(const ModelSpec& spec, int index, ParamLayout& layout)
    : Head(spec.heads[static_cast<size_t>(index)], index) {
  hidden_ = spec.stacks[static_cast<size_t>(spec_.stack)].hidden;
  classes_ = spec_.classes;
  w_.index = layout.add(spec_.prefix + ".weight", {classes_, hidden_}, -1, true, spec.init_std);
  b_.index = layout.add(spec_.prefix + ".bias", {classes_}, -1, false, 0);
}

void TokenClassificationHead::allocate(int batch, int seq, int) {
  const long N = static_cast<long>(batch) * seq;
  x_.assign(N * hidden_, 0);
  d_x_.assign(N * hidden_, 0);
  logits_.assign(N * classes_, 0);
  d_logits_.assign(N * classes_, 0);
  loss_scratch_.assign(loss_scratch_doubles(N), 0);
}

void TokenClassificationHead::bind(const ParamLayout& layout, float* params, float* grads) {
  w_.bind(layout, params, grads);
  b_.bind(layout, params, grads);
}

HeadLoss TokenClassificationHead::forward(const PassContext& ctx, Stack& stack, SampledTokens&, double* metrics) {
  const int N = ctx.rows(), H = hidden_, C = classes_;
  dropout_forward(x_.data(), stack.top(), static_cast<long>(N) * H, ctx.hidden_dropout(),
                  ctx.dropout_key(site_head_dropout(index_, 0)));
  linear_forward(logits_.data(), x_.data(), w_.w, b_.w, N, H, C);  // [N, C]
  return classification_loss(ctx, spec_, logits_.data(), d_logits_.data(), ctx.mb.labels, ctx.mb.host.labels, N, C,
                             metrics, loss_scratch_.data());
}

void TokenClassificationHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  const int N = ctx.rows(), H = hidden_, C = classes_;
  const long NH = static_cast<long>(N) * H;
  linear_backward(d_x_.data(), w_.g, b_.g, d_logits_.data(), x_.data(), w_.w, N, H, C, false);
  dropout_backward(d_x_.data(), d_x_.data(), NH, ctx.hidden_dropout(), ctx.dropout_key(site_head_dropout(index_, 0)));
  // The head and its input are replicated over the tensor-parallel group: no reduction.
  float* d_top = stack.d_top();
  if (stack.claim_d_top())
    copy(d_top, d_x_.data(), NH);
  else
    add_into(d_top, d_x_.data(), NH);
}

}  // namespace paratrain
