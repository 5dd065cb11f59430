// causal_lm.h — the causal-LM head (GPT-2): logits = top·Eᵀ with the decoder tied to the word
// embeddings, vocabulary-parallel cross-entropy over every labelled position. No tensors of its own.
#pragma once
#include "head.h"

namespace paratrain {

class CausalLmHead : public Head {
 public:
  CausalLmHead(const ModelSpec& spec, int index, const Embeddings& embeddings);
  void allocate(int batch, int seq, int max_preds) override;
  HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) override;
  void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) override;
  long logit_rows() const override { return rows_; }
  const float* logits() const override { return logits_.data(); }
  int logit_position(long r) const override { return static_cast<int>(r); }

 private:
  const ModelSpec& model_;
  const Embeddings& embeddings_;
  int hidden_ = 0;
  long rows_ = 0;
  kernels::Buffer<float> logits_;      // [N, Vl] → overwritten by its gradient
  kernels::Buffer<float> ce_scratch_;  // TP: [3·N]
  kernels::Buffer<float> d_own_;       // [N, H] when another head wrote ∂top first
};

}  // namespace paratrain
