// params.cpp — parameter layout, binding and initialisation for BERT and GPT-2.
#include "params.h"

#include <cmath>  // std::sqrt

#include "../common/rng.h"  // rng_key, rng_normal, mix64

namespace paratrain {

ParamLayout::ParamLayout(const ModelConfig& cfg) : cfg_(cfg) {
  cfg.validate();
  const int64_t H = cfg.hidden, F = cfg.ffn, V = cfg.vocab, P = cfg.max_positions;
  const double std = 0.02;
  // GPT-2 scales the init of projections that write into the residual stream by 1/sqrt(2·layers).
  const double resid_std = cfg.arch == Arch::Gpt ? std / std::sqrt(2.0 * cfg.layers) : std;
  const bool bert = cfg.arch == Arch::Bert;

  add_vocab("embeddings.word.weight", {V, H}, true, std);
  add("embeddings.position.weight", {P, H}, -1, true, std);
  if (bert) {
    add("embeddings.segment.weight", {2, H}, -1, true, std);
    add("embeddings.norm.weight", {H}, -1, false, 0, 1);
    add("embeddings.norm.bias", {H}, -1, false, 0);
  }
  for (int l = 0; l < cfg.layers; l++) {
    const std::string p = "layers." + std::to_string(l) + ".";
    if (!bert) {
      add(p + "attn_norm.weight", {H}, -1, false, 0, 1);
      add(p + "attn_norm.bias", {H}, -1, false, 0);
    }
    for (const char* m : {"q", "k", "v"}) add(p + "attn." + m + ".weight", {H, H}, 0, true, std);
    for (const char* m : {"q", "k", "v"}) add(p + "attn." + m + ".bias", {H}, 0, false, 0);
    add(p + "attn.out.weight", {H, H}, 1, true, resid_std);
    add(p + "attn.out.bias", {H}, -1, false, 0);
    add(p + (bert ? "attn_norm.weight" : "mlp_norm.weight"), {H}, -1, false, 0, 1);
    add(p + (bert ? "attn_norm.bias" : "mlp_norm.bias"), {H}, -1, false, 0);
    add(p + "mlp.up.weight", {F, H}, 0, true, std);
    add(p + "mlp.up.bias", {F}, 0, false, 0);
    add(p + "mlp.down.weight", {H, F}, 1, true, resid_std);
    add(p + "mlp.down.bias", {H}, -1, false, 0);
    if (bert) {
      add(p + "mlp_norm.weight", {H}, -1, false, 0, 1);
      add(p + "mlp_norm.bias", {H}, -1, false, 0);
    }
  }
  if (bert) {
    add("pooler.weight", {H, H}, -1, true, std);
    add("pooler.bias", {H}, -1, false, 0);
    add("mlm.transform.weight", {H, H}, -1, true, std);
    add("mlm.transform.bias", {H}, -1, false, 0);
    add("mlm.norm.weight", {H}, -1, false, 0, 1);
    add("mlm.norm.bias", {H}, -1, false, 0);
    add_vocab("mlm.decoder.bias", {V}, false, 0);
    add("nsp.weight", {2, H}, -1, true, std);
    add("nsp.bias", {2}, -1, false, 0);
  } else {
    add("final_norm.weight", {H}, -1, false, 0, 1);
    add("final_norm.bias", {H}, -1, false, 0);
  }
}

void ParamLayout::add(const std::string& name, std::vector<int64_t> global_shape, int split_dim, bool decay, double std,
                      float value) {
  ParamInfo p;
  p.name = name;
  p.global_shape = global_shape;
  p.shape = global_shape;
  p.split_dim = cfg_.tp_size > 1 ? split_dim : -1;
  if (p.split_dim >= 0) {
    p.shape[p.split_dim] /= cfg_.tp_size;
    p.shard_start = cfg_.tp_rank * p.shape[p.split_dim];
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
}

void ParamLayout::add_vocab(const std::string& name, std::vector<int64_t> global_shape, bool decay, double std) {
  add(name, global_shape, 0, decay, std);
  if (cfg_.tp_size == 1) return;
  ParamInfo& p = params_.back();
  const int64_t row = p.numel / p.shape[0];
  total_ -= p.numel;
  p.shape[0] = cfg_.local_vocab();
  p.shard_start = cfg_.vocab_start();
  p.shard_valid = cfg_.local_vocab_valid();
  p.numel = p.shape[0] * row;
  total_ += p.numel;
}

const ParamInfo& ParamLayout::find(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return p;
  throw Error("ERR_INTERNAL", "no parameter named " + name);
}

ModelWeights<float> bind_weights(const ParamLayout& layout, const ModelConfig& cfg, float* base) {
  auto at = [&](const std::string& name) { return base + layout.offset(name); };
  auto maybe = [&](const std::string& name) -> float* {
    for (const auto& p : layout.params())
      if (p.name == name) return base + p.offset;
    return nullptr;
  };
  ModelWeights<float> w{};
  w.word = at("embeddings.word.weight");
  w.position = at("embeddings.position.weight");
  w.segment = maybe("embeddings.segment.weight");
  w.emb_norm_w = maybe("embeddings.norm.weight");
  w.emb_norm_b = maybe("embeddings.norm.bias");
  for (int l = 0; l < cfg.layers; l++) {
    const std::string p = "layers." + std::to_string(l) + ".";
    LayerWeights<float> lw{};
    lw.qkv_w = at(p + "attn.q.weight");
    lw.qkv_b = at(p + "attn.q.bias");
    lw.out_w = at(p + "attn.out.weight");
    lw.out_b = at(p + "attn.out.bias");
    lw.norm1_w = at(p + "attn_norm.weight");
    lw.norm1_b = at(p + "attn_norm.bias");
    lw.norm2_w = at(p + "mlp_norm.weight");
    lw.norm2_b = at(p + "mlp_norm.bias");
    lw.up_w = at(p + "mlp.up.weight");
    lw.up_b = at(p + "mlp.up.bias");
    lw.down_w = at(p + "mlp.down.weight");
    lw.down_b = at(p + "mlp.down.bias");
    w.layers.push_back(lw);
  }
  w.final_norm_w = maybe("final_norm.weight");
  w.final_norm_b = maybe("final_norm.bias");
  w.pooler_w = maybe("pooler.weight");
  w.pooler_b = maybe("pooler.bias");
  w.mlm_w = maybe("mlm.transform.weight");
  w.mlm_b = maybe("mlm.transform.bias");
  w.mlm_norm_w = maybe("mlm.norm.weight");
  w.mlm_norm_b = maybe("mlm.norm.bias");
  w.mlm_decoder_b = maybe("mlm.decoder.bias");
  w.nsp_w = maybe("nsp.weight");
  w.nsp_b = maybe("nsp.bias");
  return w;
}

static uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void init_params(const ParamLayout& layout, const ModelConfig& cfg, uint64_t seed, float* params) {
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
