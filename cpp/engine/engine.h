// engine.h — one rank's training engine: flat parameters, gradients and optimizer state, the model
// with its preallocated activations, staged input batches, and the step that ties them together.
// Written once for both backends: its state lives in kernel buffers (host memory on the CPU, device
// memory in the CUDA build), allocated when the engine is made, never inside a step; the host
// reaches it only through the copies below (checkpoints, tests) and the staged batches.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "../comm/communicator.h"  // Communicator
#include "grad_reducer.h"          // GradientReducer
#include "../kernels/matmul_precision.h"  // MatmulPrecision
#include "../model/model.h"        // Model, MicroBatch, ForwardResult
#include "../optim/optimizer.h"    // Optimizer

namespace paratrain {

struct EngineConfig {
  ModelSpec model;
  int micro_batch = 1, seq_len = 1, grad_accum = 1;
  int max_predictions = 0;  // masked LM: masked positions per micro-batch (0 = every position)
  int threads = 1;
  uint64_t seed = 0;        // dropout streams
  MatmulPrecision precision = MatmulPrecision::Fp32;  // the GEMMs' (config `precision`); storage is fp32
  OptimizerConfig optimizer;
  // Data parallelism: this replica's index and the replica count (tensor parallelism is in `model`).
  int dp_rank = 0, dp_size = 1;
  size_t bucket_elems = size_t(2) << 20;  // gradient all-reduce bucket (elements)
};

// A micro-batch copied out of JS so the step can run on another thread (host memory), and its
// copy in kernel memory (the CUDA build uploads it before the step; the CPU build reads the host one).
struct DeviceBatch {
  kernels::Buffer<int> tokens, labels, segments, pair_labels, fixed_samples;
  kernels::Buffer<int> class_labels, start_positions, end_positions;
  kernels::Buffer<float> targets;
  kernels::Buffer<uint8_t> key_mask;
  void allocate(int batch, int seq);
};

struct StagedBatch {
  int batch = 0, seq = 0;
  std::vector<int> tokens, labels, segments, pair_labels, fixed_samples;
  std::vector<int> class_labels, start_positions, end_positions;  // [B] fine-tuning targets
  std::vector<float> targets;                                     // [B] regression targets
  std::vector<uint8_t> key_mask;
  bool has_segments = false, has_mask = false, has_pair = false, has_samples = false;
  bool has_class_labels = false, has_targets = false, has_spans = false;
  uint64_t first_sample = 0;  // index of sequence 0 in its split's stream, split folded in
  DeviceBatch device;         // allocated once for the engine's largest micro-batch
  // The batch as the model reads it: kernel pointers (uploading first where kernels read device
  // memory) and the host view.
  MicroBatch view();
};

// What the engine's state takes, in bytes (the memory report at start-up).
struct MemoryReport {
  int64_t params = 0, grads = 0, optimizer = 0;  // flat fp32 buffers
  int64_t activations = 0;  // the model's activations, gradient scratch and workspaces, and the staged batches
  int64_t device_used = -1, device_total = -1;  // CUDA: what cudaMemGetInfo says the engine took; -1 on the CPU
};

// With data parallelism every figure is the whole job's: losses averaged over all micro-batches of
// all replicas, tokens and target counts summed, metrics pooled (Σ numerators / Σ denominators).
struct StepMetrics {
  double loss = 0;              // the objective, mean over micro-batches
  std::vector<double> losses;   // per head (Model::loss_names()), mean over micro-batches
  std::vector<long> counts;     // per head: targets behind its loss, summed
  std::vector<double> metrics;  // per metric (Model::metric_names())
  double grad_norm = 0;
  long tokens = 0;
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
  const ParamLayout& layout() const { return model_.layout(); }
  const Model& model() const { return model_; }
  Optimizer& optimizer() { return *optimizer_; }
  const MemoryReport& memory() const { return memory_; }

  // Host copies of the flat state (every array holds layout().total() values).
  void read_params(float* host) const;
  void write_params(const float* host);
  void read_grads(float* host) const;
  void write_grads(const float* host);
  void read_moments(float* m, float* v);
  void write_moments(const float* m, const float* v);

  // The tensor- and data-parallel groups, connected (sizes must match the config). Until this is
  // called the engine trains alone.
  void set_communicators(std::unique_ptr<Communicator> tensor_parallel, std::unique_ptr<Communicator> data_parallel);

  void init_params(uint64_t seed);

  // Copies and checks a batch (ids in range, sizes within the preallocated shape) into slot i.
  StagedBatch& stage(int slot);
  void check_staged(int slot);  // may complete it (segments of a one-segment model)

  // `requests`: this rank's pending save/stop requests, OR-ed over the whole job into the result.
  // `loss_scale` (a power of two, 1 = off) multiplies the loss gradient, so the gradients left in
  // grads() are scaled by it; train_step unscales them in the update. A step whose loss or gradients
  // are not finite is skipped (StepMetrics::skipped) and leaves parameters and moments untouched.
  StepMetrics forward_backward(int micro_batches, uint64_t step, uint32_t requests = 0, float loss_scale = 1.0f);
  StepMetrics train_step(int micro_batches, uint64_t step, float lr, uint32_t requests = 0, float loss_scale = 1.0f);
  // Forward only; micro_batches may be 0 on a data-parallel replica that has no share of this call.
  StepMetrics evaluate(int micro_batches);
  // One optimizer update with the gradients already in grads() (tests and tools).
  OptimizerResult apply_optimizer(float lr);
  // Forward of slot 0 without dropout: the prediction head's logits rows [rows, V] with their flat
  // positions, and the class head's logits [B, classes] (empty when the model has none).
  // Also the position head's logits [B·T, classes] (replaced-token detection, tagging, answer spans)
  // and, when `hidden` is given, the last stack's output [B·T, H]. Tensor-parallel engines (each rank
  // of the group calling) read the heads that every rank holds whole: the class and position heads.
  StepMetrics forward_logits(std::vector<float>* logits, std::vector<int>* rows, std::vector<float>* class_logits,
                             std::vector<float>* position_logits, std::vector<float>* hidden = nullptr);

  // One call at a time: the N-API layer takes this before staging and releases it when done.
  std::atomic<bool> busy{false};

 private:
  void use_threads() const;
  StepMetrics empty_metrics() const;
  void add_forward(StepMetrics& m, const ForwardResult& r, int micro_batches) const;
  void finish_metrics(StepMetrics& m);  // job-wide sums and means; metrics become ratios
  void agree_requests(StepMetrics& m) const;
  void require_groups() const;  // a TP/DP rank cannot compute without its communicators
  EngineConfig cfg_;
  Model model_;  // first: it builds the parameter layout the buffers below follow
  kernels::Buffer<float> params_, grads_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<StagedBatch> staged_;
  SingleProcessCommunicator solo_;
  std::unique_ptr<Communicator> tp_owned_, dp_owned_;
  Communicator* tensor_parallel_ = &solo_;
  std::unique_ptr<GradientReducer> reducer_;  // data parallelism: gradients averaged over replicas
  std::vector<double> reduce_scratch_;        // the figures of a step, summed over replicas
  MemoryReport memory_;
};

}  // namespace paratrain
