// question_answering.h — fine-tuning: extractive question answering, as BertForQuestionAnswering:
// qa_outputs [2, H] over every position of the top gives a start and an end logit; the loss is the
// mean of two softmax cross-entropies over the sequence's positions (start, end), mean over
// sequences. A window without the answer points both at position 0 ([CLS]). Like HF, padding
// positions take part in the softmax (the batch's answer positions never point at them).
#pragma once
#include "head.h"

namespace paratrain {

class QuestionAnsweringHead : public Head {
 public:
  QuestionAnsweringHead(const ModelSpec& spec, int index, ParamLayout& layout);
  void allocate(int batch, int seq, int max_preds) override;
  void bind(const ParamLayout& layout, float* params, float* grads) override;
  int first_param() const override { return w_.index; }
  HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) override;
  void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) override;
  // [N, 2]: the start and the end logit of every position.
  int position_classes() const override { return 2; }
  const float* position_logits() const override { return logits_.data(); }

 private:
  int hidden_ = 0;
  Param w_, b_;                                // [2, H], [2]
  kernels::Buffer<float> logits_, d_logits_;   // [N, 2]
  kernels::Buffer<float> start_, end_;         // [B, T] each, then their gradients
  bool have_targets_ = false;
};

}  // namespace paratrain
