// activations.h — every activation and activation-gradient buffer of one micro-batch, allocated
// once for the largest (batch, sequence) shape; a step only writes into them.
#pragma once
#include <cstdint>  // uint8_t
#include <vector>

#include "config.h"  // ModelConfig

namespace paratrain {

struct LayerActivations {
  std::vector<float> qkv;        // [N, 3·Hl]
  std::vector<float> probs;      // [B, heads_l, T, T] attention probabilities before dropout
  std::vector<float> ctx;        // [N, Hl]
  std::vector<float> attn_proj;  // [N, H] attention output projection, before dropout
  std::vector<float> resid1;     // [N, H] BERT: x + attn (LayerNorm input); GPT: x + attn
  std::vector<float> norm1;      // [N, H] BERT: LN(resid1); GPT: LN(x)
  std::vector<float> norm1_mean, norm1_rstd;  // [N]
  std::vector<float> up;         // [N, Fl] before GELU
  std::vector<float> gelu;       // [N, Fl]
  std::vector<float> down;       // [N, H] before dropout
  std::vector<float> resid2;     // [N, H] BERT: norm1 + mlp (LayerNorm input); GPT: the layer output
  std::vector<float> norm2;      // [N, H] GPT: LN(resid1); BERT: unused (its LN output is the stream)
  std::vector<float> norm2_mean, norm2_rstd;
};

struct Activations {
  int max_rows = 0;   // B·T
  int max_preds = 0;  // BERT: masked positions per micro-batch
  std::vector<float> embed;              // [N, H] embedding sum
  std::vector<float> embed_mean, embed_rstd;
  std::vector<std::vector<float>> stream;  // L+1 × [N, H]: the input of each layer, then the output
  std::vector<LayerActivations> layers;
  // GPT head
  std::vector<float> final_norm, final_mean, final_rstd;  // [N, H], [N]
  // BERT heads
  std::vector<int> pred_rows;                   // [M] row index of each prediction
  std::vector<int> pred_labels;                 // [M]
  std::vector<float> mlm_in, mlm_dense, mlm_gelu, mlm_norm, mlm_mean, mlm_rstd;  // [M, H], [M]
  std::vector<int> cls_rows;                    // [B]
  std::vector<float> pool_in, pooled, nsp_logits;  // [B,H], [B,H], [B,2]
  std::vector<float> logits;                    // [M or N, V] → overwritten by its gradient
  // Gradient scratch
  std::vector<float> d_x, d_h1, d_h2;  // [N, H]
  std::vector<float> d_qkv;            // [N, 3·Hl]
  std::vector<float> d_ffn;            // [N, Fl]
  std::vector<float> d_head_a, d_head_b;  // [max(M, B), H]
  std::vector<float> attn_scratch;     // threads × 2 × T × T

  void allocate(const ModelConfig& cfg, int batch, int seq, int max_preds, int threads);
};

}  // namespace paratrain
