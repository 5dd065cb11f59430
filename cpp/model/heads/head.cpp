// head.cpp — the one place that maps a head kind to its part.
#include "head.h"

#include "causal_lm.h"       // CausalLmHead
#include "masked_lm.h"       // MaskedLmHead
#include "question_answering.h"  // QuestionAnsweringHead
#include "replaced_token.h"  // ReplacedTokenHead
#include "sentence_pair.h"   // SentencePairHead
#include "sequence_classification.h"  // SequenceClassificationHead
#include "token_classification.h"     // TokenClassificationHead

namespace paratrain {

HeadLoss classification_loss(const PassContext& ctx, const HeadSpec& spec, const float* logits, float* d_logits,
                             const int* labels, const int* host_labels, long rows, int C, double* metrics,
                             double* scratch) {
  const long correct = kernels::argmax_hits(logits, labels, rows, C, kIgnoreIndex, scratch);
  const long count = kernels::count_targets(host_labels, rows, kIgnoreIndex);
  metrics[0] += static_cast<double>(correct);
  metrics[1] += static_cast<double>(count);
  const float scale =
      ctx.opt.training && count > 0 ? spec.weight * ctx.opt.grad_scale / static_cast<float>(count) : 0.0f;
  kernels::copy(d_logits, logits, rows * C);
  const kernels::CrossEntropyResult ce =
      kernels::softmax_cross_entropy(d_logits, labels, rows, C, kIgnoreIndex, scale, scratch);
  return {ce.count > 0 ? ce.loss_sum / ce.count : 0.0, ce.count};
}

std::unique_ptr<Head> make_head(const ModelSpec& spec, int index, const Embeddings& embeddings, ParamLayout& layout) {
  switch (spec.heads[static_cast<size_t>(index)].kind) {
    case HeadKind::MaskedLm:
      return std::make_unique<MaskedLmHead>(spec, index, embeddings, layout);
    case HeadKind::SentencePair:
      return std::make_unique<SentencePairHead>(spec, index, layout);
    case HeadKind::CausalLm:
      return std::make_unique<CausalLmHead>(spec, index, embeddings);
    case HeadKind::ReplacedToken:
      return std::make_unique<ReplacedTokenHead>(spec, index, layout);
    case HeadKind::SequenceClassification:
      return std::make_unique<SequenceClassificationHead>(spec, index, layout);
    case HeadKind::TokenClassification:
      return std::make_unique<TokenClassificationHead>(spec, index, layout);
    case HeadKind::QuestionAnswering:
      return std::make_unique<QuestionAnsweringHead>(spec, index, layout);
  }
  throw Error("ERR_CONFIG", "unknown head kind");
}

}  // namespace paratrain
