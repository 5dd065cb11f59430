// token_classification.h — fine-tuning: a label per position (NER and other tagging), as
// BertForTokenClassification: the top → dropout → classifier [C, H]; softmax cross-entropy against
// the batch's labels, mean over labelled positions (a word's first sub-word; the rest are -100).
// Reports the token accuracy over labelled positions.
#pragma once
#include "head.h"

namespace paratrain {

class TokenClassificationHead : public Head {
 public:
  TokenClassificationHead(const ModelSpec& spec, int index, ParamLayout& layout);
  void allocate(int batch, int seq, int max_preds) override;
  void bind(const ParamLayout& layout, float* params, float* grads) override;
  int first_param() const override { return w_.index; }
  std::vector<std::string> metric_names() const override { return {spec_.loss + "_accuracy"}; }
  HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) override;
  void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) override;
  int position_classes() const override { return classes_; }
  const float* position_logits() const override { return logits_.data(); }

 private:
  int hidden_ = 0, classes_ = 0;
  Param w_, b_;                               // [C, H], [C]
  kernels::Buffer<float> x_, d_x_;            // [N, H] the top after dropout, its gradient
  kernels::Buffer<float> logits_, d_logits_;  // [N, C]
};

}  // namespace paratrain
