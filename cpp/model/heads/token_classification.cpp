// token_classification.cpp — see token_classification.h. Shapes: N = B·T rows, H the stack's
// hidden size, C the labels.
#include "token_classification.h"

#include <algorithm>  // std::copy, std::max_element

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
  const int* labels = ctx.mb.labels;
  long correct = 0;
  for (int n = 0; n < N; n++) {
    if (labels[n] == kIgnoreIndex) continue;
    const float* row = logits_.data() + static_cast<long>(n) * C;
    correct += std::max_element(row, row + C) - row == labels[n];
  }
  const long count = count_targets(labels, N, kIgnoreIndex);
  metrics[0] += static_cast<double>(correct);
  metrics[1] += static_cast<double>(count);
  const float scale =
      ctx.opt.training && count > 0 ? spec_.weight * ctx.opt.grad_scale / static_cast<float>(count) : 0.0f;
  std::copy(logits_.begin(), logits_.begin() + static_cast<long>(N) * C, d_logits_.begin());
  const CrossEntropyResult ce = softmax_cross_entropy(d_logits_.data(), labels, N, C, kIgnoreIndex, scale);
  return {ce.count > 0 ? ce.loss_sum / ce.count : 0.0, ce.count};
}

void TokenClassificationHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  const int N = ctx.rows(), H = hidden_, C = classes_;
  const long NH = static_cast<long>(N) * H;
  linear_backward(d_x_.data(), w_.g, b_.g, d_logits_.data(), x_.data(), w_.w, N, H, C, false);
  dropout_backward(d_x_.data(), d_x_.data(), NH, ctx.hidden_dropout(), ctx.dropout_key(site_head_dropout(index_, 0)));
  // The head and its input are replicated over the tensor-parallel group: no reduction.
  float* d_top = stack.d_top();
  if (stack.claim_d_top())
    std::copy(d_x_.begin(), d_x_.begin() + NH, d_top);
  else
    for (long i = 0; i < NH; i++) d_top[i] += d_x_[static_cast<size_t>(i)];
}

}  // namespace paratrain
