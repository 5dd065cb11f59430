// sequence_classification.h — fine-tuning: one label per sequence (sentiment, spam, GLUE pairs).
// Two forms, as the Hugging Face families have them:
//   pooled (BERT, ALBERT): the stack's pooler → dropout → classifier [C, H];
//   dense (RoBERTa, ELECTRA): the top's first token → dropout → dense [H, H] → tanh (RoBERTa) or
//   GELU (ELECTRA) → dropout → out_proj [C, H].
// C ≥ 2: softmax cross-entropy against class ids, mean over labelled sequences, with the accuracy
// as a metric. C = 1: regression, mean squared error against float targets (HF's MSELoss).
#pragma once
#include "head.h"

namespace paratrain {

class SequenceClassificationHead : public Head {
 public:
  SequenceClassificationHead(const ModelSpec& spec, int index, ParamLayout& layout);
  void allocate(int batch, int seq, int max_preds) override;
  void bind(const ParamLayout& layout, float* params, float* grads) override;
  int first_param() const override { return spec_.dense ? dense_w_.index : out_w_.index; }
  std::vector<std::string> metric_names() const override;
  HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) override;
  void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) override;
  int classes() const override { return classes_; }
  const float* class_logits() const override { return logits_.data(); }

 private:
  bool regression() const { return classes_ == 1; }
  const ModelSpec& model_;
  int hidden_ = 0, classes_ = 0;
  Param dense_w_, dense_b_, out_w_, out_b_;  // dense form: [H, H], [H]; both: [C, H], [C]
  kernels::Buffer<int> cls_rows_;            // [B] flat position of each sequence's first token
  kernels::Buffer<float> first_, x_;         // [B, H] the head's input, after dropout
  kernels::Buffer<float> dense_, act_, act_dropped_;  // [B, H] dense form
  kernels::Buffer<float> d_x_, d_act_;       // [B, H]
  kernels::Buffer<float> logits_, d_logits_;  // [B, C]
  bool have_targets_ = false;
};

}  // namespace paratrain
