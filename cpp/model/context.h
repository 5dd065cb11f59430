// context.h — what every part of the model sees during one forward or backward pass: the batch,
// the options of the pass, the tensor-parallel group, and the dropout streams.
#pragma once
#include <cstdint>  // uint8_t, uint64_t

#include "../comm/communicator.h"  // Communicator
#include "../common/error.h"        // Error
#include "../common/rng.h"         // rng_key
#include "spec.h"                  // ModelSpec

namespace paratrain {

constexpr int kIgnoreIndex = -100;

// What the host reads of a micro-batch to size and count (targets behind a mean, masked positions,
// real tokens): host copies of the arrays the kernels read. On the CPU they are the same arrays.
struct HostBatch {
  const int* labels = nullptr;           // [N]
  const uint8_t* key_mask = nullptr;     // [N]
  const int* fixed_samples = nullptr;    // [N]
  const int* class_labels = nullptr;     // [B]
  const int* start_positions = nullptr;  // [B]
};

// One micro-batch as the model reads it (views into kernel memory; N = batch·seq rows).
struct MicroBatch {
  int batch = 0, seq = 0;
  const int* tokens = nullptr;          // [N]
  const int* labels = nullptr;          // [N] target or kIgnoreIndex (masked LM: the original token)
  const int* segments = nullptr;        // [N] token types (null: all 0)
  const uint8_t* key_mask = nullptr;    // [N] 1 = real token (null: every position is real)
  const int* pair_labels = nullptr;     // [B] NSP/SOP label or kIgnoreIndex (null: no pair task)
  const int* fixed_samples = nullptr;   // [N] tokens a sampling head takes instead of drawing (tests)
  const int* class_labels = nullptr;    // [B] sequence classification: class id or kIgnoreIndex
  const float* targets = nullptr;       // [B] sequence regression: the value
  const int* start_positions = nullptr; // [B] question answering: the answer's first token (0: [CLS], no answer)
  const int* end_positions = nullptr;   // [B] question answering: its last token (inclusive)
  uint64_t first_sample = 0;            // stream index of sequence 0, split folded in: keys the sampling
  HostBatch host;                       // the same arrays in host memory (null where the batch has none)
};

struct ForwardOptions {
  bool training = false;    // dropout on, and the loss gradient is written for backward
  float grad_scale = 1.0f;  // multiplies ∂loss (1/accumulation steps)
  uint64_t dropout_seed = 0, dropout_step = 0;
  uint64_t sample_seed = 0;  // the sampling head's stream (train.seed), in training and evaluation alike
};

// Dropout stream sites: one per place in the network, per stack (stack 0 keeps the numbering of
// the two-model engine, so its masks are unchanged). Attention-probability dropout acts on this
// rank's heads, so its site carries the TP rank; the others act on replicated activations.
inline uint64_t site_embedding(int stack) { return 1 + (uint64_t(stack) << 40); }
inline uint64_t site_attn_probs(int stack, int layer, int tp_rank) {
  return 16 + 4ull * layer + (uint64_t(tp_rank) << 32) + (uint64_t(stack) << 40);
}
inline uint64_t site_attn_out(int stack, int layer) { return 17 + 4ull * layer + (uint64_t(stack) << 40); }
inline uint64_t site_mlp_out(int stack, int layer) { return 18 + 4ull * layer + (uint64_t(stack) << 40); }
inline uint64_t site_sampling(int head) { return 2 + (uint64_t(head) << 40); }
// A fine-tuning head's dropouts: before its classifier (k = 0) and after its dense layer (k = 1).
inline uint64_t site_head_dropout(int head, int k) { return 3 + uint64_t(k) + (uint64_t(head) << 40); }

struct PassContext {
  const ModelSpec& spec;
  Communicator& tp;
  const ForwardOptions& opt;
  const MicroBatch& mb;
  int threads = 1;

  int rows() const { return mb.batch * mb.seq; }
  uint64_t dropout_key(uint64_t site) const { return rng_key(opt.dropout_seed, opt.dropout_step, site); }
  float hidden_dropout() const { return opt.training ? spec.hidden_dropout : 0.0f; }
  float attention_dropout() const { return opt.training ? spec.attention_dropout : 0.0f; }
};

}  // namespace paratrain
