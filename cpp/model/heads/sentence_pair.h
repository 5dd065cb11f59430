// sentence_pair.h — NSP (BERT) / SOP (ALBERT): a two-way classifier over the pooled first token,
// trained when the batch carries pair labels.
#pragma once
#include "head.h"

namespace paratrain {

class SentencePairHead : public Head {
 public:
  SentencePairHead(const ModelSpec& spec, int index, ParamLayout& layout);
  void allocate(int batch, int seq, int max_preds) override;
  void bind(const ParamLayout& layout, float* params, float* grads) override;
  int first_param() const override { return w_.index; }
  HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) override;
  void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) override;
  int classes() const override { return 2; }
  const float* class_logits() const override { return logits_.data(); }

 private:
  int hidden_ = 0;
  Param w_, b_;                    // [2, H], [2]
  kernels::Buffer<float> logits_;  // [B, 2] → overwritten by its gradient
};

}  // namespace paratrain
