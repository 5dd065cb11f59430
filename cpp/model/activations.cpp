// activations.cpp — sizes of the activation buffers.
#include "activations.h"

#include <algorithm>  // std::max

namespace paratrain {

void Activations::allocate(const ModelConfig& cfg, int batch, int seq, int preds, int threads) {
  const long N = static_cast<long>(batch) * seq;
  const long H = cfg.hidden, Hl = cfg.local_hidden(), Fl = cfg.local_ffn(), V = cfg.local_vocab();
  const bool bert = cfg.arch == Arch::Bert;
  max_rows = static_cast<int>(N);
  max_preds = preds;
  embed.assign(N * H, 0);
  embed_mean.assign(N, 0);
  embed_rstd.assign(N, 0);
  stream.assign(cfg.layers + 1, kernels::Buffer<float>(N * H));
  layers.resize(cfg.layers);
  for (auto& a : layers) {
    a.qkv.assign(N * 3 * Hl, 0);
    a.probs.assign(static_cast<long>(batch) * cfg.local_heads() * seq * seq, 0);
    a.ctx.assign(N * Hl, 0);
    a.attn_proj.assign(N * H, 0);
    a.resid1.assign(N * H, 0);
    a.norm1.assign(N * H, 0);
    a.norm1_mean.assign(N, 0);
    a.norm1_rstd.assign(N, 0);
    a.up.assign(N * Fl, 0);
    a.gelu.assign(N * Fl, 0);
    a.down.assign(N * H, 0);
    a.resid2.assign(bert ? N * H : 0, 0);  // GPT's layer output lives in the stream
    a.norm2.assign(bert ? 0 : N * H, 0);
    a.norm2_mean.assign(N, 0);
    a.norm2_rstd.assign(N, 0);
  }
  const long M = bert ? preds : 0;
  if (bert) {
    pred_rows.assign(M, 0);
    pred_labels.assign(M, 0);
    for (auto* v : {&mlm_in, &mlm_dense, &mlm_gelu, &mlm_norm}) v->assign(M * H, 0);
    mlm_mean.assign(M, 0);
    mlm_rstd.assign(M, 0);
    cls_rows.assign(batch, 0);
    pool_in.assign(static_cast<long>(batch) * H, 0);
    pooled.assign(static_cast<long>(batch) * H, 0);
    nsp_logits.assign(static_cast<long>(batch) * 2, 0);
    logits.assign(M * V, 0);
  } else {
    final_norm.assign(N * H, 0);
    final_mean.assign(N, 0);
    final_rstd.assign(N, 0);
    logits.assign(N * V, 0);
  }
  d_x.assign(N * H, 0);
  d_h1.assign(N * H, 0);
  d_h2.assign(N * H, 0);
  d_qkv.assign(N * 3 * Hl, 0);
  d_ffn.assign(N * Fl, 0);
  const long head_rows = std::max<long>(M, batch);
  d_head_a.assign(head_rows * H, 0);
  d_head_b.assign(head_rows * H, 0);
  ce_scratch.assign(cfg.tp_size > 1 ? 3 * std::max<long>(M, N) : 0, 0);
  attn_scratch.assign(static_cast<long>(std::max(threads, 1)) * 2 * seq * seq, 0);
}

}  // namespace paratrain
