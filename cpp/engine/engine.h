// engine.h — one rank's training engine: flat parameters, gradients and optimizer state, the model
// with its preallocated activations, staged input batches, and the step that ties them together.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "../comm/communicator.h"  // Communicator
#include "grad_reducer.h"          // GradientReducer
#include "../model/model.h"        // Model, MicroBatch
#include "../model/params.h"       // ParamLayout
#include "../optim/optimizer.h"    // Optimizer

namespace paratrain {

struct EngineConfig {
  ModelConfig model;
  int micro_batch = 1, seq_len = 1, grad_accum = 1;
  int max_predictions = 0;  // BERT: masked positions per micro-batch (0 = every position)
  int threads = 1;
  uint64_t seed = 0;        // dropout streams
  OptimizerConfig optimizer;
  // Data parallelism: this replica's index and the replica count (tensor parallelism is in `model`).
  int dp_rank = 0, dp_size = 1;
  size_t bucket_elems = size_t(2) << 20;  // gradient all-reduce bucket (elements)
};

// A micro-batch copied out of JS so the step can run on another thread.
struct StagedBatch {
  int batch = 0, seq = 0;
  std::vector<int> tokens, labels, segments, nsp_labels;
  std::vector<uint8_t> key_mask;
  bool has_segments = false, has_mask = false, has_nsp = false;
  MicroBatch view() const;
};

// With data parallelism every figure is the whole job's: losses averaged over all micro-batches of
// all replicas, tokens and targets summed.
struct StepMetrics {
  double loss = 0, lm_loss = 0, nsp_loss = 0;  // means over micro-batches
  double grad_norm = 0;
  long tokens = 0, targets = 0;
  long batches = 0;  // micro-batches behind the means
  // Data parallelism: how long the step waited for gradient buckets after backward ended — the
  // part of the all-reduce that did not overlap backward.
  double dp_wait_ms = 0;
  bool skipped = false;
  // Requests (kRequestSave | kRequestStop) raised by any rank during this step, the same on every
  // rank afterwards: how a job agrees on the step at which it saves or stops.
  uint32_t requests = 0;
};

constexpr uint32_t kRequestSave = 1u;
constexpr uint32_t kRequestStop = 2u;

class Engine {
 public:
  explicit Engine(const EngineConfig& cfg);

  const EngineConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<float>& params() { return params_; }
  std::vector<float>& grads() { return grads_; }
  Optimizer& optimizer() { return optimizer_; }

  // The tensor- and data-parallel groups, connected (sizes must match the config). Until this is
  // called the engine trains alone.
  void set_communicators(std::unique_ptr<Communicator> tensor_parallel, std::unique_ptr<Communicator> data_parallel);

  void init_params(uint64_t seed);

  // Copies and checks a batch (ids in range, sizes within the preallocated shape) into slot i.
  StagedBatch& stage(int slot);
  void check_staged(int slot) const;

  // `requests`: this rank's pending save/stop requests, OR-ed over the whole job into the result.
  StepMetrics forward_backward(int micro_batches, uint64_t step, uint32_t requests = 0);
  StepMetrics train_step(int micro_batches, uint64_t step, float lr, uint32_t requests = 0);
  // Forward only; micro_batches may be 0 on a data-parallel replica that has no share of this call.
  StepMetrics evaluate(int micro_batches);
  // One optimizer update with the gradients already in grads() (tests and tools).
  OptimizerResult apply_optimizer(float lr);
  // Forward of slot 0 without dropout; returns the logits rows (see Model::logits).
  LossParts forward_logits(std::vector<float>* logits, std::vector<int>* rows, std::vector<float>* nsp_logits);

  // One call at a time: the N-API layer takes this before staging and releases it when done.
  std::atomic<bool> busy{false};

 private:
  void use_threads() const;
  void average_metrics(StepMetrics& m) const;
  void agree_requests(StepMetrics& m) const;
  void require_groups() const;  // a TP/DP rank cannot compute without its communicators
  EngineConfig cfg_;
  ParamLayout layout_;
  std::vector<float> params_, grads_;
  ModelWeights<float> weights_, weight_grads_;
  Optimizer optimizer_;
  Model model_;
  std::vector<StagedBatch> staged_;
  std::vector<size_t> stage_offsets_;  // backward stage (Model::GradsReady) → first final offset
  SingleProcessCommunicator solo_;
  std::unique_ptr<Communicator> tp_owned_, dp_owned_;
  Communicator* tensor_parallel_ = &solo_;
  std::unique_ptr<GradientReducer> reducer_;  // data parallelism: gradients averaged over replicas
};

}  // namespace paratrain
