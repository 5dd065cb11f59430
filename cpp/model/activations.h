// activations.h — every activation and activation-gradient buffer of one micro-batch, allocated
// once for the largest (batch, sequence) shape; a step only writes into them.
#pragma once
#include <cstdint>  // uint8_t
#include <vector>

#include "../kernels/backend.h"  // kernels::Buffer
#include "config.h"              // ModelConfig

namespace paratrain {

struct LayerActivations {
  kernels::Buffer<float> qkv;        // [N, 3·Hl]
  kernels::Buffer<float> probs;      // [B, heads_l, T, T] attention probabilities before dropout
  kernels::Buffer<float> ctx;        // [N, Hl]
  kernels::Buffer<float> attn_proj;  // [N, H] attention output projection, before dropout
  kernels::Buffer<float> resid1;     // [N, H] BERT: x + attn (LayerNorm input); GPT: x + attn
  kernels::Buffer<float> norm1;      // [N, H] BERT: LN(resid1); GPT: LN(x)
  kernels::Buffer<float> norm1_mean, norm1_rstd;  // [N]
  kernels::Buffer<float> up;         // [N, Fl] before GELU
  kernels::Buffer<float> gelu;       // [N, Fl]
  kernels::Buffer<float> down;       // [N, H] before dropout
  kernels::Buffer<float> resid2;     // [N, H] BERT: norm1 + mlp (LayerNorm input); GPT: the layer output
  kernels::Buffer<float> norm2;      // [N, H] GPT: LN(resid1); BERT: unused (its LN output is the stream)
  kernels::Buffer<float> norm2_mean, norm2_rstd;
};

struct Activations {
  int max_rows = 0;   // B·T
  int max_preds = 0;  // BERT: masked positions per micro-batch
  kernels::Buffer<float> embed;              // [N, H] embedding sum
  kernels::Buffer<float> embed_mean, embed_rstd;
  std::vector<kernels::Buffer<float>> stream;  // L+1 × [N, H]: the input of each layer, then the output
  std::vector<LayerActivations> layers;
  // GPT head
  kernels::Buffer<float> final_norm, final_mean, final_rstd;  // [N, H], [N]
  // BERT heads
  kernels::Buffer<int> pred_rows;                   // [M] row index of each prediction
  kernels::Buffer<int> pred_labels;                 // [M]
  kernels::Buffer<float> mlm_in, mlm_dense, mlm_gelu, mlm_norm, mlm_mean, mlm_rstd;  // [M, H], [M]
  kernels::Buffer<int> cls_rows;                    // [B]
  kernels::Buffer<float> pool_in, pooled, nsp_logits;  // [B,H], [B,H], [B,2]
  kernels::Buffer<float> logits;                    // [M or N, Vl] → overwritten by its gradient
  kernels::Buffer<float> ce_scratch;                // TP: [3·rows] vocabulary-parallel softmax statistics
  // Gradient scratch
  kernels::Buffer<float> d_x, d_h1, d_h2;  // [N, H]
  kernels::Buffer<float> d_qkv;            // [N, 3·Hl]
  kernels::Buffer<float> d_ffn;            // [N, Fl]
  kernels::Buffer<float> d_head_a, d_head_b;  // [max(M, B), H]
  kernels::Buffer<float> attn_scratch;     // threads × 2 × T × T

  void allocate(const ModelConfig& cfg, int batch, int seq, int max_preds, int threads);
};

}  // namespace paratrain
