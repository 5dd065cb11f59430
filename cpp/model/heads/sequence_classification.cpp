// sequence_classification.cpp — see sequence_classification.h. Shapes: B sequences of T tokens,
// H the stack's hidden size, C the classes (1: regression).
#include "sequence_classification.h"

namespace paratrain {

using namespace kernels;

SequenceClassificationHead::SequenceClassificationHead(const ModelSpec& spec, int index, ParamLayout& layout)
    : Head(spec.heads[static_cast<size_t>(index)], index), model_(spec) {
  hidden_ = spec.stacks[static_cast<size_t>(spec_.stack)].hidden;
  classes_ = spec_.classes;
  const int64_t H = hidden_, C = classes_;
  const std::string p = spec_.prefix + ".";
  if (spec_.dense) {
    dense_w_.index = layout.add(p + "dense.weight", {H, H}, -1, true, spec.init_std);
    dense_b_.index = layout.add(p + "dense.bias", {H}, -1, false, 0);
    out_w_.index = layout.add(p + "out.weight", {C, H}, -1, true, spec.init_std);
    out_b_.index = layout.add(p + "out.bias", {C}, -1, false, 0);
  } else {
    out_w_.index = layout.add(p + "weight", {C, H}, -1, true, spec.init_std);
    out_b_.index = layout.add(p + "bias", {C}, -1, false, 0);
  }
}

std::vector<std::string> SequenceClassificationHead::metric_names() const {
  if (regression()) return {};
  return {spec_.loss + "_accuracy"};
}

void SequenceClassificationHead::allocate(int batch, int, int) {
  const long BH = static_cast<long>(batch) * hidden_, BC = static_cast<long>(batch) * classes_;
  cls_rows_.assign(batch, 0);
  for (auto* b : {&first_, &x_, &d_x_}) b->assign(BH, 0);
  for (auto* b : {&dense_, &act_, &act_dropped_, &d_act_}) b->assign(spec_.dense ? BH : 0, 0);
  logits_.assign(BC, 0);
  d_logits_.assign(BC, 0);
  loss_scratch_.assign(loss_scratch_doubles(batch), 0);
}

void SequenceClassificationHead::bind(const ParamLayout& layout, float* params, float* grads) {
  for (Param* p : {&dense_w_, &dense_b_, &out_w_, &out_b_}) p->bind(layout, params, grads);
}

HeadLoss SequenceClassificationHead::forward(const PassContext& ctx, Stack& stack, SampledTokens&, double* metrics) {
  const int B = ctx.mb.batch, T = ctx.mb.seq, H = hidden_, C = classes_;
  const long BH = static_cast<long>(B) * H;
  const float p = ctx.hidden_dropout();
  const float* in = stack.pooled();  // pooled form: [B, H]
  if (spec_.dense) {
    strided_rows(cls_rows_.data(), B, T);
    gather_rows(first_.data(), stack.top(), cls_rows_.data(), B, H);  // the first token's row
    in = first_.data();
  }
  dropout_forward(x_.data(), in, BH, p, ctx.dropout_key(site_head_dropout(index_, 0)));
  const float* to_out = x_.data();
  if (spec_.dense) {
    linear_forward(dense_.data(), x_.data(), dense_w_.w, dense_b_.w, B, H, H);
    if (spec_.dense_gelu)
      gelu_forward(act_.data(), dense_.data(), BH, model_.gelu);
    else
      tanh_forward(act_.data(), dense_.data(), BH);
    dropout_forward(act_dropped_.data(), act_.data(), BH, p, ctx.dropout_key(site_head_dropout(index_, 1)));
    to_out = act_dropped_.data();
  }
  linear_forward(logits_.data(), to_out, out_w_.w, out_b_.w, B, H, C);  // [B, C]

  have_targets_ = regression() ? ctx.mb.targets != nullptr : ctx.mb.class_labels != nullptr;
  if (!have_targets_) return {};
  if (regression()) {
    // HF: MSELoss(logits.squeeze(), labels) — the mean over the batch.
    const float scale = ctx.opt.training ? spec_.weight * ctx.opt.grad_scale / static_cast<float>(B) : 0.0f;
    const double sum = squared_error(logits_.data(), ctx.mb.targets, B, scale, d_logits_.data(), loss_scratch_.data());
    return {sum / B, B};
  }
  return classification_loss(ctx, spec_, logits_.data(), d_logits_.data(), ctx.mb.class_labels,
                             ctx.mb.host.class_labels, B, C, metrics, loss_scratch_.data());
}

void SequenceClassificationHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  if (!have_targets_) return;
  const int B = ctx.mb.batch, H = hidden_, C = classes_;
  const long BH = static_cast<long>(B) * H;
  const float p = ctx.hidden_dropout();
  if (spec_.dense) {
    linear_backward(d_act_.data(), out_w_.g, out_b_.g, d_logits_.data(), act_dropped_.data(), out_w_.w, B, H, C,
                    false);
    dropout_backward(d_act_.data(), d_act_.data(), BH, p, ctx.dropout_key(site_head_dropout(index_, 1)));
    if (spec_.dense_gelu)
      gelu_backward(d_act_.data(), d_act_.data(), dense_.data(), BH, model_.gelu);
    else
      tanh_backward(d_act_.data(), d_act_.data(), act_.data(), BH);
    linear_backward(d_x_.data(), dense_w_.g, dense_b_.g, d_act_.data(), x_.data(), dense_w_.w, B, H, H, false);
  } else {
    linear_backward(d_x_.data(), out_w_.g, out_b_.g, d_logits_.data(), x_.data(), out_w_.w, B, H, C, false);
  }
  dropout_backward(d_x_.data(), d_x_.data(), BH, p, ctx.dropout_key(site_head_dropout(index_, 0)));
  // The head and its input are replicated over the tensor-parallel group: no reduction.
  if (!spec_.dense) {
    float* d_pooled = stack.d_pooled();
    if (stack.claim_d_pooled())
      copy(d_pooled, d_x_.data(), BH);
    else
      add_into(d_pooled, d_x_.data(), BH);
    return;
  }
  float* d_top = stack.d_top();
  if (stack.claim_d_top()) fill(d_top, static_cast<long>(ctx.rows()) * H, 0.0f);
  scatter_add_rows(d_top, d_x_.data(), cls_rows_.data(), B, H);
}

}  // namespace paratrain
