// config.h — the shape of a model and of this rank's shard of it.
#pragma once
#include "../common/error.h"               // Error
#include "../kernels/cpu/gelu.h"           // GeluForm

namespace paratrain {

enum class Arch { Bert, Gpt };

struct ModelConfig {
  Arch arch = Arch::Bert;
  int layers = 0, hidden = 0, heads = 0, ffn = 0, vocab = 0, max_positions = 0;
  float hidden_dropout = 0.1f, attention_dropout = 0.1f;
  // Megatron tensor parallelism: this rank holds heads/tp_size heads and ffn/tp_size MLP columns.
  int tp_rank = 0, tp_size = 1;

  int head_dim() const { return hidden / heads; }
  int local_heads() const { return heads / tp_size; }
  int local_hidden() const { return local_heads() * head_dim(); }  // attention width on this rank
  int local_ffn() const { return ffn / tp_size; }
  float layernorm_eps() const { return arch == Arch::Bert ? 1e-12f : 1e-5f; }
  cpu::GeluForm gelu_form() const { return arch == Arch::Bert ? cpu::GeluForm::Erf : cpu::GeluForm::Tanh; }

  void validate() const {
    if (layers < 1 || hidden < 1 || heads < 1 || ffn < 1 || vocab < 2 || max_positions < 1)
      throw Error("ERR_CONFIG", "model sizes must be positive (layers, hidden, heads, ffn, vocab, max_positions)");
    if (hidden % heads != 0) throw Error("ERR_CONFIG", "model.heads must divide model.hidden");
    if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size) throw Error("ERR_CONFIG", "tensor-parallel rank out of range");
    if (heads % tp_size != 0 || ffn % tp_size != 0)
      throw Error("ERR_CONFIG", "parallel.tensor must divide model.heads and model.ffn");
    if (hidden_dropout < 0 || hidden_dropout >= 1 || attention_dropout < 0 || attention_dropout >= 1)
      throw Error("ERR_CONFIG", "dropout must be in [0, 1)");
  }
};

}  // namespace paratrain
