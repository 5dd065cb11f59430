// params.cpp — registration and initialisation of the flat parameter layout.
#include "params.h"

#include "../common/error.h"  // Error
#include "../common/rng.h"    // rng_key, rng_normal

namespace paratrain {

int ParamLayout::add(const std::string& name, std::vector<int64_t> global_shape, int split_dim, bool decay, double std,
                     float value) {
  ParamInfo p;
  p.name = name;
  p.global_shape = global_shape;
  p.shape = global_shape;
  p.split_dim = tp_size_ > 1 ? split_dim : -1;
  if (p.split_dim >= 0) {
    p.shape[p.split_dim] /= tp_size_;
    p.shard_start = tp_rank_ * p.shape[p.split_dim];
    p.shard_valid = p.shape[p.split_dim];
  }
  p.numel = 1;
  for (int64_t d : p.shape) p.numel *= d;
  p.offset = total_;
  p.decay = decay;
  p.init_std = std;
  p.init_value = value;
  total_ += p.numel;
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

int ParamLayout::add_vocab(const std::string& name, std::vector<int64_t> global_shape, const VocabShard& shard,
                           bool decay, double std) {
  const int index = add(name, global_shape, 0, decay, std);
  if (tp_size_ == 1) return index;
  ParamInfo& p = params_.back();
  const int64_t row = p.numel / p.shape[0];
  total_ -= p.numel;
  p.shape[0] = shard.local();
  p.shard_start = shard.start();
  p.shard_valid = shard.valid();
  p.numel = p.shape[0] * row;
  total_ += p.numel;
  return index;
}

void ParamLayout::add_norm(const std::string& prefix, int64_t width, Param& weight, Param& bias) {
  weight.index = add(prefix + "weight", {width}, -1, false, 0, 1);
  bias.index = add(prefix + "bias", {width}, -1, false, 0);
}

const ParamInfo& ParamLayout::find(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return p;
  throw Error("ERR_INTERNAL", "no parameter named " + name);
}

static uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void init_params(const ParamLayout& layout, uint64_t seed, float* params) {
  for (const auto& p : layout.params()) {
    float* dst = params + p.offset;
    if (p.init_std == 0) {
      for (int64_t i = 0; i < p.numel; i++) dst[i] = p.init_value;
      continue;
    }
    const uint64_t key = rng_key(seed, 0, name_hash(p.name));
    // Map each local element to its index in the unsplit tensor (a vector is one column).
    const bool matrix = p.shape.size() == 2;
    const int64_t rows = p.shape[0], cols = matrix ? p.shape[1] : 1;
    const int64_t global_cols = matrix ? p.global_shape[1] : 1;
    const int64_t row0 = p.split_dim == 0 ? p.shard_start : 0;
    const int64_t col0 = p.split_dim == 1 ? p.shard_start : 0;
    const int64_t valid_rows = p.split_dim == 0 ? p.shard_valid : rows;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < p.numel; i++) {
      const int64_t r = i / cols, c = i % cols;
      if (r >= valid_rows) {  // vocabulary padding
        dst[i] = 0;
        continue;
      }
      const int64_t global = (row0 + r) * global_cols + col0 + c;
      dst[i] = static_cast<float>(p.init_std * rng_normal(key, static_cast<uint64_t>(global)));
    }
  }
}

}  // namespace paratrain
