// replaced_token.h — ELECTRA's replaced-token detection: for every real position of the
// discriminator's input, is this token the original or a generator's sample? dense → GELU → a
// single logit; binary cross-entropy with logits, mean over real positions. Reports the accuracy
// over all positions, on replaced tokens and on original ones.
#pragma once
#include "head.h"

namespace paratrain {

class ReplacedTokenHead : public Head {
 public:
  ReplacedTokenHead(const ModelSpec& spec, int index, ParamLayout& layout);
  void allocate(int batch, int seq, int max_preds) override;
  void bind(const ParamLayout& layout, float* params, float* grads) override;
  int first_param() const override { return dense_w_.index; }
  std::vector<std::string> metric_names() const override;
  HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) override;
  void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) override;
  int position_classes() const override { return 1; }
  const float* position_logits() const override { return logits_.data(); }

 private:
  const ModelSpec& model_;
  int hidden_ = 0;
  Param dense_w_, dense_b_, out_w_, out_b_;    // [H, H], [H], [1, H], [1]
  kernels::Buffer<float> dense_, act_, d_act_;  // [N, H]
  kernels::Buffer<float> logits_, d_logits_;    // [N]
};

}  // namespace paratrain
