// head.h — a head turns a stack's output into one named, weighted loss (and, for some, metrics or
// samples). Each head is an explicit forward/backward pair and registers its own tensors; the model
// calls the heads of a stack in spec order forward and in reverse order backward.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../embeddings.h"  // Embeddings (tied decoders)
#include "../stack.h"       // Stack

namespace paratrain {

// What a sampling head hands on (ELECTRA): the batch's tokens with every masked position replaced by
// a draw from the generator, and which positions now differ from the original text.
struct SampledTokens {
  kernels::Buffer<int> tokens;        // [N]
  kernels::Buffer<uint8_t> replaced;  // [N] 1 = the token differs from the original
  void allocate(long rows) {
    tokens.assign(rows, 0);
    replaced.assign(rows, 0);
  }
};

struct HeadLoss {
  double value = 0;  // mean over the counted targets (0 when there are none)
  long count = 0;    // targets behind the mean
};

class Head {
 public:
  Head(const HeadSpec& spec, int index) : spec_(spec), index_(index) {}
  virtual ~Head() = default;
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  const HeadSpec& spec() const { return spec_; }
  virtual void allocate(int batch, int seq, int max_preds) = 0;
  virtual void bind(const ParamLayout&, float*, float*) {}
  // The layout index of the head's first tensor (its gradients are final after its backward); -1: none.
  virtual int first_param() const { return -1; }
  // Extra figures a head reports beside its loss, as ratios Σnumerator / Σdenominator over a step.
  virtual std::vector<std::string> metric_names() const { return {}; }

  // Training: also writes ∂loss/∂(its activations) for backward. `metrics` holds 2 doubles per metric
  // (numerator, denominator), to be added to.
  virtual HeadLoss forward(const PassContext& ctx, Stack& stack, SampledTokens& sampled, double* metrics) = 0;
  virtual void backward(const PassContext& ctx, Stack& stack, const SampledTokens& sampled) = 0;

  // Inference: rows of vocabulary logits (this rank's columns) of the last forward, and the flat
  // position (b·T + t) of each row. Heads without vocabulary logits have none.
  virtual long logit_rows() const { return 0; }
  virtual const float* logits() const { return nullptr; }
  virtual int logit_position(long) const { return 0; }
  // Inference: per-sequence class logits [B, classes] (sentence pair).
  virtual int classes() const { return 0; }
  virtual const float* class_logits() const { return nullptr; }
  // Inference: per-position class logits [N, position_classes()] (replaced-token detection).
  virtual int position_classes() const { return 0; }
  virtual const float* position_logits() const { return nullptr; }

 protected:
  const HeadSpec& spec_;
  const int index_;  // in the spec: keys the head's random stream
  kernels::Buffer<double> loss_scratch_;  // loss_scratch_doubles(rows): the loss's reductions
};

// The classification heads' loss: softmax cross-entropy over the rows of `logits` [rows, C] whose
// label is not ignored, as their mean (×weight×grad_scale into d_logits [rows, C] when training), with
// the accuracy's correct / labelled rows added to metrics[0], metrics[1]. `labels` in kernel memory,
// `host_labels` the same in host memory; scratch: loss_scratch_doubles(rows).
HeadLoss classification_loss(const PassContext& ctx, const HeadSpec& spec, const float* logits, float* d_logits,
                             const int* labels, const int* host_labels, long rows, int C, double* metrics,
                             double* scratch);

std::unique_ptr<Head> make_head(const ModelSpec& spec, int index, const Embeddings& embeddings, ParamLayout& layout);

}  // namespace paratrain
