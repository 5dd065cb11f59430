// masked_lm.cpp — see masked_lm.h. Shapes: M masked positions, H the stack's hidden size, E the
// embedding width, Vl this rank's vocabulary columns (V when tp = 1).
#include "masked_lm.h"

#include <algorithm>  // std::max

#include "../tensor_parallel.h"  // vocab_parallel_cross_entropy, vocab_parallel_sample, tp_reduce_backward

namespace paratrain {

using namespace kernels;

MaskedLmHead::MaskedLmHead(const ModelSpec& spec, int index, const Embeddings& embeddings, ParamLayout& layout)
    : Head(spec.heads[static_cast<size_t>(index)], index), model_(spec), embeddings_(embeddings) {
  hidden_ = spec.stacks[static_cast<size_t>(spec_.stack)].hidden;
  const int64_t H = hidden_, E = spec.embeddings.dim;
  const std::string p = spec_.prefix + ".";
  transform_w_.index = layout.add(p + "transform.weight", {E, H}, -1, true, spec.init_std);
  transform_b_.index = layout.add(p + "transform.bias", {E}, -1, false, 0);
  layout.add_norm(p + "norm.", E, norm_w_, norm_b_);
  decoder_b_.index = layout.add_vocab(p + "decoder.bias", {spec.vocab}, spec.vocab_shard(), false, 0);
}

void MaskedLmHead::allocate(int, int, int max_preds) {
  const long M = max_preds, H = hidden_, E = model_.embeddings.dim, Vl = model_.vocab_shard().local();
  max_preds_ = max_preds;
  for (auto* b : {&pred_rows_host_, &pred_labels_host_}) b->assign(M, 0);
  pred_rows_.assign(M, 0);
  pred_labels_.assign(M, 0);
  draws_.assign(spec_.sample ? M : 0, 0);
  draws_host_.assign(spec_.sample ? M : 0, 0);
  row_keys_host_.assign(spec_.sample ? M : 0, 0);
  row_offsets_host_.assign(spec_.sample ? M : 0, 0);
  in_.assign(M * H, 0);
  for (auto* b : {&dense_, &act_, &norm_}) b->assign(M * E, 0);
  mean_.assign(M, 0);
  rstd_.assign(M, 0);
  logits_.assign(M * Vl, 0);
  ce_scratch_.assign(model_.tp_size > 1 || spec_.sample ? 3 * M : 0, 0);
  loss_scratch_.assign(loss_scratch_doubles(M), 0);
  row_keys_.assign(spec_.sample ? M : 0, 0);
  row_offsets_.assign(spec_.sample ? M : 0, 0);
  d_a_.assign(M * std::max(H, E), 0);
  d_b_.assign(M * std::max(H, E), 0);
}

void MaskedLmHead::bind(const ParamLayout& layout, float* params, float* grads) {
  for (Param* p : {&transform_w_, &transform_b_, &norm_w_, &norm_b_, &decoder_b_}) p->bind(layout, params, grads);
}

HeadLoss MaskedLmHead::forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double*) {
  const int N = ctx.rows(), H = hidden_, E = model_.embeddings.dim;
  const VocabShard shard = model_.vocab_shard();
  const int Vl = shard.local();
  const int* labels = ctx.mb.host.labels;
  long M = 0;
  for (int n = 0; n < N; n++) {
    if (labels[n] == kIgnoreIndex) continue;
    if (M >= max_preds_)
      throw Error("ERR_BATCH", "a micro-batch has more masked positions than the engine's limit of " +
                                   std::to_string(max_preds_) + " (raise data.max_predictions)");
    pred_rows_host_[static_cast<size_t>(M)] = n;
    pred_labels_host_[static_cast<size_t>(M)] = labels[n];
    M++;
  }
  preds_ = M;
  const int m = static_cast<int>(M);
  upload(pred_rows_.data(), pred_rows_host_.data(), M);
  upload(pred_labels_.data(), pred_labels_host_.data(), M);
  gather_rows(in_.data(), stack.top(), pred_rows_.data(), m, H);
  linear_forward(dense_.data(), in_.data(), transform_w_.w, transform_b_.w, m, H, E);
  gelu_forward(act_.data(), dense_.data(), M * E, model_.gelu);
  layernorm_forward(norm_.data(), mean_.data(), rstd_.data(), act_.data(), norm_w_.w, norm_b_.w, m, E,
                    model_.layernorm_eps);
  linear_forward(logits_.data(), norm_.data(), embeddings_.word().w, decoder_b_.w, m, E, Vl);  // [M,Vl]
  if (spec_.sample) sample(ctx, sampled, m);
  const float scale = ctx.opt.training && M > 0 ? spec_.weight * ctx.opt.grad_scale / static_cast<float>(M) : 0.0f;
  const CrossEntropyResult ce = vocab_parallel_cross_entropy(ctx.tp, shard, logits_.data(), pred_labels_.data(), M,
                                                             kIgnoreIndex, scale, ce_scratch_.data(),
                                                             loss_scratch_.data());
  return {ce.count > 0 ? ce.loss_sum / ce.count : 0.0, ce.count};
}

// The discriminator's input: the batch's tokens with each masked position replaced by a token drawn
// from the generator's softmax (before the cross-entropy turns the logits into their gradient).
// Sequence b's stream is keyed by its index in the sample stream, so every layout draws alike.
void MaskedLmHead::sample(const PassContext& ctx, SampledTokens& sampled, int M) {
  const int N = ctx.rows(), T = ctx.mb.seq;
  const uint64_t V = static_cast<uint64_t>(model_.vocab);
  if (ctx.mb.host.fixed_samples) {
    for (int m = 0; m < M; m++)
      draws_host_[static_cast<size_t>(m)] = ctx.mb.host.fixed_samples[pred_rows_host_[static_cast<size_t>(m)]];
    upload(draws_.data(), draws_host_.data(), M);
  } else {
    for (int m = 0; m < M; m++) {
      const int n = pred_rows_host_[static_cast<size_t>(m)];
      row_keys_host_[static_cast<size_t>(m)] =
          rng_key(ctx.opt.sample_seed, ctx.mb.first_sample + static_cast<uint64_t>(n / T), site_sampling(index_));
      row_offsets_host_[static_cast<size_t>(m)] = static_cast<uint64_t>(n % T) * V;
    }
    upload(row_keys_.data(), row_keys_host_.data(), M);
    upload(row_offsets_.data(), row_offsets_host_.data(), M);
    vocab_parallel_sample(ctx.tp, model_.vocab_shard(), logits_.data(), M, row_keys_.data(), row_offsets_.data(),
                          ce_scratch_.data(), draws_.data());
  }
  copy(sampled.tokens.data(), ctx.mb.tokens, N);
  fill(sampled.replaced.data(), N, uint8_t(0));
  apply_samples(sampled.tokens.data(), sampled.replaced.data(), pred_rows_.data(), draws_.data(), pred_labels_.data(),
                M);
}

void MaskedLmHead::backward(const PassContext& ctx, Stack& stack, const SampledTokens&) {
  const int M = static_cast<int>(preds_), H = hidden_, E = model_.embeddings.dim, N = ctx.rows();
  const int Vl = model_.vocab_shard().local();
  float* d_a = d_a_.data();
  float* d_b = d_b_.data();
  // logits = norm·Eᵀ + bias → LayerNorm → GELU → dense → gathered rows of the stack's output.
  linear_backward(d_a, embeddings_.word().g, decoder_b_.g, logits_.data(), norm_.data(), embeddings_.word().w, M, E,
                  Vl, false);
  tp_reduce_backward(ctx.tp, d_a, static_cast<long>(M) * E);  // f: the decoder's input is replicated
  layernorm_backward(d_b, norm_w_.g, norm_b_.g, d_a, act_.data(), norm_w_.w, mean_.data(), rstd_.data(), M, E, false);
  gelu_backward(d_b, d_b, dense_.data(), static_cast<long>(M) * E, model_.gelu);
  linear_backward(d_a, transform_w_.g, transform_b_.g, d_b, in_.data(), transform_w_.w, M, H, E, false);
  float* d_top = stack.d_top();
  if (stack.claim_d_top()) fill(d_top, static_cast<long>(N) * H, 0.0f);
  scatter_add_rows(d_top, d_a, pred_rows_.data(), M, H);
}

}  // namespace paratrain
