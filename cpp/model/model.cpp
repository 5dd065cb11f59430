// model.cpp — the forward and backward passes of BERT (post-LN) and GPT-2 (pre-LN).
// Shapes: B sequences of T tokens, N = B·T rows, H hidden, Hl = H/tp attention width on this rank,
// Fl = F/tp MLP width on this rank, Vl = this rank's vocabulary columns (V when tp = 1),
// M masked positions (BERT). Tensor parallelism (Megatron): QKV and MLP-up are column-parallel,
// attention-out and MLP-down row-parallel; see tensor_parallel.h for f, g and the vocabulary split.
#include "model.h"

#include <algorithm>  // std::fill
#include <cmath>      // std::isfinite

#include "../common/rng.h"         // rng_key
#include "../kernels/backend.h"    // the kernel set: linear, layernorm, gelu, attention, dropout, ...
#include "tensor_parallel.h"       // tp_reduce_*, row_parallel_linear_forward, vocab_parallel_*

namespace paratrain {

using namespace kernels;

// Dropout stream sites: one per place in the network. Attention-probability dropout acts on this
// rank's heads, so its site carries the TP rank; the others act on replicated activations.
static uint64_t site_embedding() { return 1; }
static uint64_t site_attn_probs(int layer, int tp_rank) { return 16 + 4ull * layer + (uint64_t(tp_rank) << 32); }
static uint64_t site_attn_out(int layer) { return 17 + 4ull * layer; }
static uint64_t site_mlp_out(int layer) { return 18 + 4ull * layer; }

Model::Model(const ModelConfig& cfg, int max_batch, int max_seq, int max_preds, int threads)
    : cfg_(cfg), threads_(threads) {
  cfg_.validate();
  if (max_seq > cfg.max_positions)
    throw Error("ERR_CONFIG", "sequence length " + std::to_string(max_seq) + " exceeds max positions " +
                                  std::to_string(cfg.max_positions));
  acts_.allocate(cfg_, max_batch, max_seq, cfg.arch == Arch::Bert ? max_preds : 0, threads);
}

uint64_t Model::dropout_key(const ForwardOptions& opt, uint64_t site) const {
  return rng_key(opt.dropout_seed, opt.dropout_step, site);
}

long Model::logit_rows(const MicroBatch& mb) const {
  return cfg_.arch == Arch::Bert ? preds_ : static_cast<long>(mb.batch) * mb.seq;
}

LossParts Model::forward(const ModelWeights<float>& w, const MicroBatch& mb, const ForwardOptions& opt) {
  const bool bert = cfg_.arch == Arch::Bert;
  const int B = mb.batch, T = mb.seq, H = cfg_.hidden, Hl = cfg_.local_hidden(), Fl = cfg_.local_ffn();
  const int Vl = cfg_.local_vocab(), N = B * T;
  const float eps = cfg_.layernorm_eps();
  Communicator& tp = *tp_;
  const float p_hidden = opt.training ? cfg_.hidden_dropout : 0.0f;
  const float p_attn = opt.training ? cfg_.attention_dropout : 0.0f;
  const GeluForm form = cfg_.gelu_form();
  Activations& a = acts_;

  // Embeddings: [N,H] = word + position (+ segment); BERT normalises, both apply dropout.
  vocab_parallel_embedding_forward(tp, cfg_, a.embed.data(), mb.tokens, mb.segments, w.word, w.position,
                                   bert ? w.segment : nullptr, B, T);
  float* x0 = a.stream[0].data();
  if (bert) {
    layernorm_forward(x0, a.embed_mean.data(), a.embed_rstd.data(), a.embed.data(), w.emb_norm_w, w.emb_norm_b, N, H,
                      eps);
    dropout_forward(x0, x0, static_cast<long>(N) * H, p_hidden, dropout_key(opt, site_embedding()));
  } else {
    dropout_forward(x0, a.embed.data(), static_cast<long>(N) * H, p_hidden, dropout_key(opt, site_embedding()));
  }

  for (int l = 0; l < cfg_.layers; l++) {
    const LayerWeights<float>& lw = w.layers[l];
    LayerActivations& la = a.layers[l];
    const float* x = a.stream[l].data();
    float* y = a.stream[l + 1].data();
    AttentionShape shape{B, T, cfg_.local_heads(), cfg_.head_dim(), !bert, bert ? mb.key_mask : nullptr, p_attn,
                         dropout_key(opt, site_attn_probs(l, cfg_.tp_rank))};
    // Attention input: BERT reads the stream, GPT its LayerNorm.
    const float* attn_in = x;
    if (!bert) {
      layernorm_forward(la.norm1.data(), la.norm1_mean.data(), la.norm1_rstd.data(), x, lw.norm1_w, lw.norm1_b, N, H,
                        eps);
      attn_in = la.norm1.data();
    }
    linear_forward(la.qkv.data(), attn_in, lw.qkv_w, lw.qkv_b, N, H, 3 * Hl);  // [N,3Hl]
    attention_forward(la.ctx.data(), la.probs.data(), la.qkv.data(), shape, a.attn_scratch.data());
    row_parallel_linear_forward(tp, la.attn_proj.data(), la.ctx.data(), lw.out_w, lw.out_b, N, Hl, H);  // g
    residual_dropout_forward(la.resid1.data(), x, la.attn_proj.data(), static_cast<long>(N) * H, p_hidden,
                             dropout_key(opt, site_attn_out(l)));
    // MLP input: BERT normalises the residual sum (post-LN), GPT normalises it into norm2 (pre-LN).
    const float* mlp_in;
    if (bert) {
      layernorm_forward(la.norm1.data(), la.norm1_mean.data(), la.norm1_rstd.data(), la.resid1.data(), lw.norm1_w,
                        lw.norm1_b, N, H, eps);
      mlp_in = la.norm1.data();
    } else {
      layernorm_forward(la.norm2.data(), la.norm2_mean.data(), la.norm2_rstd.data(), la.resid1.data(), lw.norm2_w,
                        lw.norm2_b, N, H, eps);
      mlp_in = la.norm2.data();
    }
    linear_forward(la.up.data(), mlp_in, lw.up_w, lw.up_b, N, H, Fl);  // [N,Fl]
    gelu_forward(la.gelu.data(), la.up.data(), static_cast<long>(N) * Fl, form);
    row_parallel_linear_forward(tp, la.down.data(), la.gelu.data(), lw.down_w, lw.down_b, N, Fl, H);  // g
    if (bert) {
      residual_dropout_forward(la.resid2.data(), mlp_in, la.down.data(), static_cast<long>(N) * H, p_hidden,
                               dropout_key(opt, site_mlp_out(l)));
      layernorm_forward(y, la.norm2_mean.data(), la.norm2_rstd.data(), la.resid2.data(), lw.norm2_w, lw.norm2_b, N, H,
                        eps);
    } else {
      residual_dropout_forward(y, la.resid1.data(), la.down.data(), static_cast<long>(N) * H, p_hidden,
                               dropout_key(opt, site_mlp_out(l)));
    }
  }

  const float* top = a.stream[cfg_.layers].data();
  LossParts out;
  if (!bert) {
    // GPT head: final LayerNorm, logits = z·Eᵀ (tied), cross-entropy over every labelled position.
    layernorm_forward(a.final_norm.data(), a.final_mean.data(), a.final_rstd.data(), top, w.final_norm_w,
                      w.final_norm_b, N, H, eps);
    linear_forward(a.logits.data(), a.final_norm.data(), w.word, static_cast<const float*>(nullptr), N, H, Vl);
    const long targets = count_targets(mb.labels, N, kIgnoreIndex);
    const float scale = opt.training && targets > 0 ? opt.grad_scale / static_cast<float>(targets) : 0.0f;
    const CrossEntropyResult ce = vocab_parallel_cross_entropy(tp, cfg_, a.logits.data(), mb.labels, N, kIgnoreIndex,
                                                               scale, a.ce_scratch.data());
    out.lm_loss = ce.count > 0 ? ce.loss_sum / ce.count : 0.0;
    out.loss = out.lm_loss;
    out.targets = ce.count;
    return out;
  }

  // BERT MLM head on the masked positions only (gathered), as NVIDIA's BERT does: same loss,
  // a fraction of the vocabulary GEMM.
  long M = 0;
  for (int n = 0; n < N; n++) {
    if (mb.labels[n] == kIgnoreIndex) continue;
    if (M >= a.max_preds)
      throw Error("ERR_BATCH", "a micro-batch has more masked positions than the engine's limit of " +
                                   std::to_string(a.max_preds) + " (raise data.max_predictions)");
    a.pred_rows[M] = n;
    a.pred_labels[M] = mb.labels[n];
    M++;
  }
  preds_ = M;
  gather_rows(a.mlm_in.data(), top, a.pred_rows.data(), static_cast<int>(M), H);
  linear_forward(a.mlm_dense.data(), a.mlm_in.data(), w.mlm_w, w.mlm_b, static_cast<int>(M), H, H);
  gelu_forward(a.mlm_gelu.data(), a.mlm_dense.data(), M * H, form);
  layernorm_forward(a.mlm_norm.data(), a.mlm_mean.data(), a.mlm_rstd.data(), a.mlm_gelu.data(), w.mlm_norm_w,
                    w.mlm_norm_b, static_cast<int>(M), H, eps);
  linear_forward(a.logits.data(), a.mlm_norm.data(), w.word, w.mlm_decoder_b, static_cast<int>(M), H, Vl);
  const float mlm_scale = opt.training && M > 0 ? opt.grad_scale / static_cast<float>(M) : 0.0f;
  const CrossEntropyResult mlm = vocab_parallel_cross_entropy(tp, cfg_, a.logits.data(), a.pred_labels.data(), M,
                                                              kIgnoreIndex, mlm_scale, a.ce_scratch.data());

  // NSP / SOP head on the pooled [CLS] (row b·T).
  for (int b = 0; b < B; b++) a.cls_rows[b] = b * T;
  gather_rows(a.pool_in.data(), top, a.cls_rows.data(), B, H);
  linear_forward(a.pooled.data(), a.pool_in.data(), w.pooler_w, w.pooler_b, B, H, H);
  tanh_forward(a.pooled.data(), a.pooled.data(), static_cast<long>(B) * H);
  linear_forward(a.nsp_logits.data(), a.pooled.data(), w.nsp_w, w.nsp_b, B, H, 2);
  double nsp_loss = 0;
  if (mb.nsp_labels) {
    const float nsp_scale = opt.training ? opt.grad_scale / static_cast<float>(B) : 0.0f;
    const CrossEntropyResult nsp =
        softmax_cross_entropy(a.nsp_logits.data(), mb.nsp_labels, B, 2, kIgnoreIndex, nsp_scale);
    nsp_loss = nsp.count > 0 ? nsp.loss_sum / nsp.count : 0.0;
  }
  out.lm_loss = mlm.count > 0 ? mlm.loss_sum / mlm.count : 0.0;
  out.nsp_loss = nsp_loss;
  out.loss = out.lm_loss + out.nsp_loss;
  out.targets = mlm.count;
  return out;
}

void Model::backward(const ModelWeights<float>& w, const ModelWeights<float>& g, const MicroBatch& mb,
                     const ForwardOptions& opt, const GradsReady& grads_ready) {
  const bool bert = cfg_.arch == Arch::Bert;
  const int B = mb.batch, T = mb.seq, H = cfg_.hidden, Hl = cfg_.local_hidden(), Fl = cfg_.local_ffn();
  const int Vl = cfg_.local_vocab(), N = B * T;
  Communicator& tp = *tp_;
  // Column-parallel input gradients are partial sums (f's backward all-reduce). Where they add onto
  // a replicated residual gradient, only TP rank 0 keeps the residual before the sum.
  const bool keep_residual = cfg_.tp_rank == 0;
  auto ready = [&](int stage) {
    if (grads_ready) grads_ready(stage);
  };
  const long NH = static_cast<long>(N) * H;
  const float p_hidden = cfg_.hidden_dropout, p_attn = cfg_.attention_dropout;
  const GeluForm form = cfg_.gelu_form();
  Activations& a = acts_;
  float* dx = a.d_x.data();  // ∂L/∂(current stream), walking down the layers

  if (!bert) {
    // dlogits [N,V] are in a.logits. dz = dlogits·E, dE += dlogitsᵀ·z; then the final LayerNorm.
    linear_backward(a.d_h1.data(), g.word, static_cast<float*>(nullptr), a.logits.data(), a.final_norm.data(), w.word,
                    N, H, Vl, false);
    tp_reduce_backward(tp, a.d_h1.data(), NH);  // f: the head's input is replicated
    layernorm_backward(dx, g.final_norm_w, g.final_norm_b, a.d_h1.data(), a.stream[cfg_.layers].data(),
                       w.final_norm_w, a.final_mean.data(), a.final_rstd.data(), N, H, false);
  } else {
    std::fill(dx, dx + NH, 0.0f);
    const int M = static_cast<int>(preds_);
    float* d_a = a.d_head_a.data();
    float* d_b = a.d_head_b.data();
    // MLM: logits = norm·Eᵀ + bias → LayerNorm → GELU → dense → gathered rows of the stream.
    linear_backward(d_a, g.word, g.mlm_decoder_b, a.logits.data(), a.mlm_norm.data(), w.word, M, H, Vl, false);
    tp_reduce_backward(tp, d_a, static_cast<long>(M) * H);  // f: the decoder's input is replicated
    layernorm_backward(d_b, g.mlm_norm_w, g.mlm_norm_b, d_a, a.mlm_gelu.data(), w.mlm_norm_w, a.mlm_mean.data(),
                       a.mlm_rstd.data(), M, H, false);
    gelu_backward(d_b, d_b, a.mlm_dense.data(), static_cast<long>(M) * H, form);
    linear_backward(d_a, g.mlm_w, g.mlm_b, d_b, a.mlm_in.data(), w.mlm_w, M, H, H, false);
    scatter_add_rows(dx, d_a, a.pred_rows.data(), M, H);
    // NSP: logits = tanh(cls·Wpᵀ + bp)·Wnᵀ + bn.
    if (mb.nsp_labels) {
      linear_backward(d_a, g.nsp_w, g.nsp_b, a.nsp_logits.data(), a.pooled.data(), w.nsp_w, B, H, 2, false);
      tanh_backward(d_a, d_a, a.pooled.data(), static_cast<long>(B) * H);
      linear_backward(d_b, g.pooler_w, g.pooler_b, d_a, a.pool_in.data(), w.pooler_w, B, H, H, false);
      scatter_add_rows(dx, d_b, a.cls_rows.data(), B, H);
    }
  }
  ready(cfg_.layers);

  for (int l = cfg_.layers - 1; l >= 0; l--) {
    const LayerWeights<float>& lw = w.layers[l];
    const LayerWeights<float>& lg = g.layers[l];
    LayerActivations& la = a.layers[l];
    const float* x = a.stream[l].data();
    AttentionShape shape{B, T, cfg_.local_heads(), cfg_.head_dim(), !bert, bert ? mb.key_mask : nullptr, p_attn,
                         dropout_key(opt, site_attn_probs(l, cfg_.tp_rank))};
    float* d1 = a.d_h1.data();
    float* d2 = a.d_h2.data();
    if (bert) {
      // dx = ∂L/∂LN2(resid2). resid2 = norm1 + drop(down); norm1 = LN1(resid1); resid1 = x + drop(proj).
      layernorm_backward(d1, lg.norm2_w, lg.norm2_b, dx, la.resid2.data(), lw.norm2_w, la.norm2_mean.data(),
                         la.norm2_rstd.data(), N, H, false);                          // d1 = ∂resid2
      dropout_backward(dx, d1, NH, p_hidden, dropout_key(opt, site_mlp_out(l)));     // dx = ∂down
      linear_backward(a.d_ffn.data(), lg.down_w, lg.down_b, dx, la.gelu.data(), lw.down_w, N, Fl, H, false);
      gelu_backward(a.d_ffn.data(), a.d_ffn.data(), la.up.data(), static_cast<long>(N) * Fl, form);
      linear_backward(d1, lg.up_w, lg.up_b, a.d_ffn.data(), la.norm1.data(), lw.up_w, N, H, Fl, keep_residual);
      tp_reduce_backward(tp, d1, NH);                                                // d1 = ∂norm1 (f)
      layernorm_backward(dx, lg.norm1_w, lg.norm1_b, d1, la.resid1.data(), lw.norm1_w, la.norm1_mean.data(),
                         la.norm1_rstd.data(), N, H, false);                          // dx = ∂resid1
      dropout_backward(d1, dx, NH, p_hidden, dropout_key(opt, site_attn_out(l)));    // d1 = ∂proj
      linear_backward(d2, lg.out_w, lg.out_b, d1, la.ctx.data(), lw.out_w, N, Hl, H, false);  // d2 = ∂ctx
      attention_backward(a.d_qkv.data(), d2, la.qkv.data(), la.probs.data(), shape, a.attn_scratch.data());
      linear_backward(dx, lg.qkv_w, lg.qkv_b, a.d_qkv.data(), x, lw.qkv_w, N, H, 3 * Hl, keep_residual);
      tp_reduce_backward(tp, dx, NH);                                                // dx = ∂x (f)
    } else {
      // dx = ∂y, y = resid1 + drop(down); down from LN2(resid1); resid1 = x + drop(proj); proj from LN1(x).
      dropout_backward(d1, dx, NH, p_hidden, dropout_key(opt, site_mlp_out(l)));     // d1 = ∂down
      linear_backward(a.d_ffn.data(), lg.down_w, lg.down_b, d1, la.gelu.data(), lw.down_w, N, Fl, H, false);
      gelu_backward(a.d_ffn.data(), a.d_ffn.data(), la.up.data(), static_cast<long>(N) * Fl, form);
      linear_backward(d2, lg.up_w, lg.up_b, a.d_ffn.data(), la.norm2.data(), lw.up_w, N, H, Fl, false);
      tp_reduce_backward(tp, d2, NH);                                                // d2 = ∂norm2 (f)
      layernorm_backward(dx, lg.norm2_w, lg.norm2_b, d2, la.resid1.data(), lw.norm2_w, la.norm2_mean.data(),
                         la.norm2_rstd.data(), N, H, true);                           // dx = ∂resid1
      dropout_backward(d1, dx, NH, p_hidden, dropout_key(opt, site_attn_out(l)));    // d1 = ∂proj
      linear_backward(d2, lg.out_w, lg.out_b, d1, la.ctx.data(), lw.out_w, N, Hl, H, false);  // d2 = ∂ctx
      attention_backward(a.d_qkv.data(), d2, la.qkv.data(), la.probs.data(), shape, a.attn_scratch.data());
      linear_backward(d1, lg.qkv_w, lg.qkv_b, a.d_qkv.data(), la.norm1.data(), lw.qkv_w, N, H, 3 * Hl, false);
      tp_reduce_backward(tp, d1, NH);                                                // d1 = ∂norm1 (f)
      layernorm_backward(dx, lg.norm1_w, lg.norm1_b, d1, x, lw.norm1_w, la.norm1_mean.data(), la.norm1_rstd.data(), N,
                         H, true);                                                    // dx = ∂x
    }
    ready(l);
  }

  // Embeddings.
  dropout_backward(dx, dx, NH, p_hidden, dropout_key(opt, site_embedding()));
  const float* d_embed = dx;
  if (bert) {
    layernorm_backward(a.d_h1.data(), g.emb_norm_w, g.emb_norm_b, dx, a.embed.data(), w.emb_norm_w,
                       a.embed_mean.data(), a.embed_rstd.data(), N, H, false);
    d_embed = a.d_h1.data();
  }
  vocab_parallel_embedding_backward(cfg_, g.word, g.position, bert ? g.segment : nullptr, d_embed, mb.tokens,
                                    mb.segments, B, T);
  ready(-1);
}

}  // namespace paratrain
