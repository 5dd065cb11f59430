// params.h — the flat parameter layout: every tensor of this rank is a named slice of one buffer.
// Gradients and optimizer moments use the same layout, so one offset addresses all of them. The
// parts of the model register their own tensors here (name, shape, tensor-parallel split, init,
// weight decay); this table is the one home of parameter names (the addon's paramTable()).
#pragma once
#include <cstdint>  // int64_t
#include <string>
#include <vector>

#include "spec.h"  // ModelSpec, VocabShard

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

class ParamLayout;

// A parameter as a part uses it: its values and its gradient, views into the two flat buffers.
struct Param {
  int index = -1;  // in the layout; -1 = the part does not have this tensor
  float* w = nullptr;
  float* g = nullptr;
  explicit operator bool() const { return index >= 0; }
  void bind(const ParamLayout& layout, float* params, float* grads);
};

class ParamLayout {
 public:
  ParamLayout(int tp_rank, int tp_size) : tp_rank_(tp_rank), tp_size_(tp_size) {}
  // A tensor split along `split_dim` (-1: replicated); returns its index.
  int add(const std::string& name, std::vector<int64_t> global_shape, int split_dim, bool decay, double std,
          float value = 0);
  // A tensor whose first axis is the vocabulary: split (and padded) across TP ranks.
  int add_vocab(const std::string& name, std::vector<int64_t> global_shape, const VocabShard& shard, bool decay,
                double std);
  // A LayerNorm: `<prefix>weight` = 1 and `<prefix>bias` = 0, replicated, no decay.
  void add_norm(const std::string& prefix, int64_t width, Param& weight, Param& bias);

  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo& at(int index) const { return params_[static_cast<size_t>(index)]; }
  int64_t total() const { return total_; }
  const ParamInfo& find(const std::string& name) const;

 private:
  int tp_rank_, tp_size_;
  std::vector<ParamInfo> params_;
  int64_t total_ = 0;
};


inline void Param::bind(const ParamLayout& layout, float* params, float* grads) {
  if (index < 0) return;
  const int64_t off = layout.at(index).offset;
  w = params + off;
  g = grads + off;
}

// Initialise a flat buffer: normal(0, std) keyed by (seed, tensor name, global element index), so
// a tensor-parallel shard equals the matching slice of the unsplit tensor.
void init_params(const ParamLayout& layout, uint64_t seed, float* params);

}  // namespace paratrain
