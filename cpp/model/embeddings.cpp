// embeddings.cpp — see embeddings.h. Shapes: N = B·T rows, E the embedding width.
#include "embeddings.h"

#include "tensor_parallel.h"  // vocab_parallel_embedding_*

namespace paratrain {

using namespace kernels;

void EmbeddingActivations::allocate(const ModelSpec& spec, long rows) {
  const long E = spec.embeddings.dim;
  embed.assign(rows * E, 0);
  mean.assign(spec.embeddings.norm ? rows : 0, 0);
  rstd.assign(spec.embeddings.norm ? rows : 0, 0);
  d_embed.assign(spec.embeddings.norm ? rows * E : 0, 0);
}

Embeddings::Embeddings(const ModelSpec& spec, ParamLayout& layout) : spec_(spec) {
  const EmbeddingSpec& e = spec.embeddings;
  const int64_t E = e.dim;
  word_.index = layout.add_vocab("embeddings.word.weight", {spec.vocab, E}, spec.vocab_shard(), true, spec.init_std);
  position_.index = layout.add("embeddings.position.weight", {spec.max_positions, E}, -1, true, spec.init_std);
  if (e.type_vocab > 0)
    segment_.index = layout.add("embeddings.segment.weight", {e.type_vocab, E}, -1, true, spec.init_std);
  if (e.norm) layout.add_norm("embeddings.norm.", E, norm_w_, norm_b_);
}

void Embeddings::bind(const ParamLayout& layout, float* params, float* grads) {
  for (Param* p : {&word_, &position_, &segment_, &norm_w_, &norm_b_}) p->bind(layout, params, grads);
}

void Embeddings::forward(const PassContext& ctx, EmbeddingActivations& a, const int* tokens, float* out,
                         int stack) const {
  const int B = ctx.mb.batch, T = ctx.mb.seq, N = B * T, E = spec_.embeddings.dim;
  const int* segments = segment_ ? ctx.mb.segments : nullptr;
  vocab_parallel_embedding_forward(ctx.tp, spec_.vocab_shard(), a.embed.data(), tokens, segments, word_.w,
                                   position_.w, segment_ ? segment_.w : nullptr, B, T, E);
  const long NE = static_cast<long>(N) * E;
  const uint64_t key = ctx.dropout_key(site_embedding(stack));
  if (norm_w_) {
    layernorm_forward(out, a.mean.data(), a.rstd.data(), a.embed.data(), norm_w_.w, norm_b_.w, N, E,
                      spec_.layernorm_eps);
    dropout_forward(out, out, NE, ctx.hidden_dropout(), key);
  } else {
    dropout_forward(out, a.embed.data(), NE, ctx.hidden_dropout(), key);
  }
}

void Embeddings::backward(const PassContext& ctx, EmbeddingActivations& a, const int* tokens, float* d_out,
                          int stack) const {
  const int B = ctx.mb.batch, T = ctx.mb.seq, N = B * T, E = spec_.embeddings.dim;
  dropout_backward(d_out, d_out, static_cast<long>(N) * E, ctx.hidden_dropout(),
                   ctx.dropout_key(site_embedding(stack)));
  const float* d_embed = d_out;
  if (norm_w_) {
    layernorm_backward(a.d_embed.data(), norm_w_.g, norm_b_.g, d_out, a.embed.data(), norm_w_.w, a.mean.data(),
                       a.rstd.data(), N, E, false);
    d_embed = a.d_embed.data();
  }
  vocab_parallel_embedding_backward(spec_.vocab_shard(), word_.g, position_.g, segment_ ? segment_.g : nullptr,
                                    d_embed, tokens, segment_ ? ctx.mb.segments : nullptr, B, T, E);
}

}  // namespace paratrain
