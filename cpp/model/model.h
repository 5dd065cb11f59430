// model.h — a model as a composition of parts (llm.c style explicit forward/backward pairs over
// flat weights): the shared embeddings, the stacks and the heads a ModelSpec names, in that order in
// the parameter layout. One Model owns the activations of one micro-batch shape; weights and
// gradients are bound views into the engine's flat buffers. See docs/models.md.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../comm/communicator.h"  // Communicator
#include "context.h"               // MicroBatch, ForwardOptions, PassContext
#include "embeddings.h"            // Embeddings
#include "heads/head.h"            // Head, SampledTokens
#include "params.h"                // ParamLayout
#include "stack.h"                 // Stack, GradsReady

namespace paratrain {

// What one forward pass reports, in the spec's head order.
struct ForwardResult {
  double loss = 0;              // the objective: Σ weight·loss
  std::vector<double> losses;   // per head: mean over its targets
  std::vector<long> counts;     // per head: targets
  std::vector<double> metrics;  // per metric: numerator, denominator
};

class Model {
 public:
  // Builds the parts (registering every tensor in the layout); no activations yet.
  explicit Model(const ModelSpec& spec);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Activations for micro-batches of up to batch × seq tokens and max_preds masked positions.
  void allocate(int max_batch, int max_seq, int max_preds, int threads);
  // Points every part at the flat parameter and gradient buffers (laid out as layout()).
  void bind(float* params, float* grads);
  // The tensor-parallel group (spec.tp_size ranks); unset = this rank alone.
  void set_tensor_parallel(Communicator* tp) { tp_ = tp ? tp : &solo_; }

  const ModelSpec& spec() const { return spec_; }
  const ParamLayout& layout() const { return layout_; }
  const std::vector<std::string>& loss_names() const { return loss_names_; }
  const std::vector<std::string>& metric_names() const { return metric_names_; }
  int max_preds() const { return max_preds_; }
  bool has_masked_lm() const;

  const ForwardResult& forward(const MicroBatch& mb, const ForwardOptions& opt);
  // Accumulates ∂loss/∂weights; call after forward(training = true) on the same batch. `ready` hears
  // of every group of gradients as soon as backward has finalised it.
  void backward(const MicroBatch& mb, const ForwardOptions& opt, const GradsReady& ready = {});

  // Inference, after forward: the first head with vocabulary logits (masked or causal LM) and the
  // first with per-sequence class logits (sentence pair); null when the spec has none.
  const Head* prediction_head() const;
  const Head* class_head() const;
  const Head* position_head() const;  // the first with per-position class logits
  // The last stack's output [N, H] (the encoder a fine-tuning model classifies; sentence embeddings).
  const float* top_hidden() const;
  int top_hidden_size() const;

 private:
  void check_backward_order() const;
  ModelSpec spec_;
  ParamLayout layout_;
  std::unique_ptr<Embeddings> embeddings_;
  std::vector<std::unique_ptr<Stack>> stacks_;
  std::vector<std::unique_ptr<Head>> heads_;
  std::vector<std::string> loss_names_, metric_names_;
  std::vector<size_t> metric_offset_;  // per head: its first metric
  SampledTokens sampled_;
  ForwardResult result_;
  int threads_ = 1, max_preds_ = 0;
  SingleProcessCommunicator solo_;
  Communicator* tp_ = &solo_;
};

}  // namespace paratrain
