// params.h — the flat parameter layout: every tensor of this rank is a named slice of one buffer.
// Gradients and optimizer moments use the same layout, so one offset addresses all of them.
#pragma once
#include <cstdint>  // int64_t
#include <string>
#include <vector>

#include "config.h"  // ModelConfig

namespace paratrain {

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;         // this rank's shard
  std::vector<int64_t> global_shape;  // the whole tensor (equal to shape when not split)
  int split_dim = -1;                 // tensor-parallel split axis, -1 = replicated on every TP rank
  // Along split_dim this shard covers global indices [shard_start, shard_start + shard_valid); a
  // vocabulary shard may end in padding rows (shape[split_dim] > shard_valid) that stay zero.
  int64_t shard_start = 0, shard_valid = 0;
  int64_t offset = 0, numel = 0;      // in elements, within the flat buffer
  bool decay = false;                 // weight decay applies (matrices; not biases or LayerNorm)
  double init_std = 0;                // normal(0, std) at init; 0 = constant init_value
  float init_value = 0;
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& cfg);
  const std::vector<ParamInfo>& params() const { return params_; }
  int64_t total() const { return total_; }
  const ParamInfo& find(const std::string& name) const;
  int64_t offset(const std::string& name) const { return find(name).offset; }

 private:
  void add(const std::string& name, std::vector<int64_t> global_shape, int split_dim, bool decay, double std,
           float value = 0);
  // A tensor whose first axis is the vocabulary: split (and padded) across TP ranks.
  void add_vocab(const std::string& name, std::vector<int64_t> global_shape, bool decay, double std);
  const ModelConfig cfg_;
  std::vector<ParamInfo> params_;
  int64_t total_ = 0;
};

// Pointers into one flat buffer (parameters or gradients) — the model's view of its weights.
template <typename T>
struct LayerWeights {
  T *qkv_w, *qkv_b;  // q|k|v weights [3·Hl, H] and biases [3·Hl], contiguous in the layout
  T *out_w, *out_b;  // [H, Hl], [H]
  T *norm1_w, *norm1_b, *norm2_w, *norm2_b;  // BERT: after attention / after MLP; GPT: before them
  T *up_w, *up_b;      // [Fl, H], [Fl]
  T *down_w, *down_b;  // [H, Fl], [H]
};

template <typename T>
struct ModelWeights {
  T *word, *position, *segment;    // [V,H], [P,H], BERT [2,H]
  T *emb_norm_w, *emb_norm_b;      // BERT
  std::vector<LayerWeights<T>> layers;
  T *final_norm_w, *final_norm_b;  // GPT
  T *pooler_w, *pooler_b;          // BERT [H,H], [H]
  T *mlm_w, *mlm_b, *mlm_norm_w, *mlm_norm_b, *mlm_decoder_b;  // BERT MLM head
  T *nsp_w, *nsp_b;                // BERT [2,H], [2]
};

ModelWeights<float> bind_weights(const ParamLayout& layout, const ModelConfig& cfg, float* base);

// Initialise a flat buffer: normal(0, std) keyed by (seed, tensor name, global element index), so
// a tensor-parallel shard equals the matching slice of the unsplit tensor.
void init_params(const ParamLayout& layout, const ModelConfig& cfg, uint64_t seed, float* params);

}  // namespace paratrain
