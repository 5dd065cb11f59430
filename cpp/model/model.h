// model.h — BERT and GPT-2 as explicit forward/backward passes over flat weights (llm.c style).
// One Model owns the activations of one micro-batch shape; weights and gradients are bound views
// into the engine's flat buffers.
#pragma once
#include <cstdint>     // uint8_t, uint64_t
#include <functional>  // std::function

#include "../comm/communicator.h"  // Communicator
#include "activations.h"  // Activations
#include "config.h"       // ModelConfig
#include "params.h"       // ParamLayout, ModelWeights

namespace paratrain {

// One micro-batch as the model reads it (views; N = batch·seq rows).
struct MicroBatch {
  int batch = 0, seq = 0;
  const int* tokens = nullptr;         // [N]
  const int* labels = nullptr;         // [N] target or kIgnoreIndex
  const int* segments = nullptr;       // [N] BERT token types
  const uint8_t* key_mask = nullptr;   // [N] BERT: 1 = real token
  const int* nsp_labels = nullptr;     // [B] BERT
};

constexpr int kIgnoreIndex = -100;

struct LossParts {
  double loss = 0;      // the objective (BERT: mlm + nsp)
  double lm_loss = 0;   // MLM or causal-LM part, mean over targets
  double nsp_loss = 0;  // BERT sentence-pair part, mean over sequences
  long targets = 0;     // counted LM targets
};

struct ForwardOptions {
  bool training = false;    // dropout on, and the loss gradient is written for backward
  float grad_scale = 1.0f;  // multiplies ∂loss (1/accumulation steps)
  uint64_t dropout_seed = 0, dropout_step = 0;
};

// Called during backward when a group of parameter gradients is final: stage = layers after the
// heads (all but the tied word embedding), l after layer l, -1 at the end (embeddings).
using GradsReady = std::function<void(int stage)>;

class Model {
 public:
  Model(const ModelConfig& cfg, int max_batch, int max_seq, int max_preds, int threads);
  // The tensor-parallel group (cfg.tp_size ranks); unset = this rank alone.
  void set_tensor_parallel(Communicator* tp) { tp_ = tp ? tp : &solo_; }
  const ModelConfig& config() const { return cfg_; }
  int max_preds() const { return acts_.max_preds; }

  LossParts forward(const ModelWeights<float>& w, const MicroBatch& mb, const ForwardOptions& opt);
  // Accumulates ∂loss/∂weights into g; call after forward(training = true) on the same batch.
  void backward(const ModelWeights<float>& w, const ModelWeights<float>& g, const MicroBatch& mb,
                const ForwardOptions& opt, const GradsReady& grads_ready = {});

  // After forward: logits rows (BERT: one per prediction position, in row order; GPT: every position),
  // each holding this rank's vocabulary columns (all of them when tp_size = 1).
  const float* logits() const { return acts_.logits.data(); }
  long logit_rows(const MicroBatch& mb) const;
  // Flat position (b·T + t) of logits row r.
  int logit_position(long r) const { return cfg_.arch == Arch::Bert ? acts_.pred_rows[r] : static_cast<int>(r); }
  const float* nsp_logits() const { return acts_.nsp_logits.data(); }

 private:
  uint64_t dropout_key(const ForwardOptions& opt, uint64_t site) const;
  ModelConfig cfg_;
  Activations acts_;
  int threads_;
  long preds_ = 0;
  SingleProcessCommunicator solo_;
  Communicator* tp_ = &solo_;  // BERT prediction rows of the last forward
};

}  // namespace paratrain
