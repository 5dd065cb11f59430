// masked_lm.h — the masked-LM head (BERT, RoBERTa, ALBERT, ELECTRA's generator) on the masked
// positions only, gathered, as NVIDIA's BERT does: transform H→E (dense, GELU, LayerNorm), then a
// decoder tied to the [V,E] word embeddings plus a bias, and the vocabulary-parallel softmax.
// ELECTRA's generator also draws a token at every masked position for the discriminator.
#pragma once
#include "head.h"

namespace paratrain {

class MaskedLmHead : public Head {
 public:
  MaskedLmHead(const ModelSpec& spec, int index, const Embeddings& embeddings, ParamLayout& layout);
  void allocate(int batch, int seq, int max_preds) override;
  void bind(const ParamLayout& layout, float* params, float* grads) override;
  int first_param() const override { return transform_w_.index; }
  HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) override;
  void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) override;
  long logit_rows() const override { return preds_; }
  const float* logits() const override { return logits_.data(); }
  int logit_position(long r) const override { return pred_rows_host_[static_cast<size_t>(r)]; }

 private:
  void sample(const PassContext& ctx, SampledTokens& sampled, int M);
  const ModelSpec& model_;
  const Embeddings& embeddings_;
  int hidden_ = 0;
  Param transform_w_, transform_b_, norm_w_, norm_b_, decoder_b_;
  int max_preds_ = 0;
  long preds_ = 0;  // prediction rows of the last forward
  // The masked positions, found on the host from the batch's labels, then uploaded.
  std::vector<int> pred_rows_host_, pred_labels_host_, draws_host_;  // [M]
  std::vector<uint64_t> row_keys_host_, row_offsets_host_;          // [M] sampling streams
  kernels::Buffer<int> pred_rows_, pred_labels_, draws_;           // [M]
  kernels::Buffer<float> in_, dense_, act_, norm_, mean_, rstd_;   // [M, H], [M, E] ×3, [M]
  kernels::Buffer<float> logits_;                                  // [M, Vl] → overwritten by its gradient
  kernels::Buffer<float> ce_scratch_;                              // TP: [3·M]
  kernels::Buffer<uint64_t> row_keys_, row_offsets_;               // [M] sampling streams
  kernels::Buffer<float> d_a_, d_b_;                               // [M, max(H, E)]
};

}  // namespace paratrain
