// config.h — the shape of a model and of this rank's shard of it.
#pragma once
#include <string>  // std::to_string

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
  // Vocabulary-parallel embedding: with TP the vocabulary is padded to a multiple of 128·tp so every
  // rank holds the same number of rows; padding rows stay zero and never enter the softmax.
  int padded_vocab() const { return tp_size == 1 ? vocab : (vocab + 128 * tp_size - 1) / (128 * tp_size) * 128 * tp_size; }
  int local_vocab() const { return padded_vocab() / tp_size; }
  int vocab_start() const { return tp_rank * local_vocab(); }
  // Rows of this rank's vocabulary shard that are real tokens (the rest is padding).
  int local_vocab_valid() const {
    const int n = vocab - vocab_start();
    return n < 0 ? 0 : (n > local_vocab() ? local_vocab() : n);
  }
  float layernorm_eps() const { return arch == Arch::Bert ? 1e-12f : 1e-5f; }
  cpu::GeluForm gelu_form() const { return arch == Arch::Bert ? cpu::GeluForm::Erf : cpu::GeluForm::Tanh; }

  void validate() const {
    if (layers < 1 || hidden < 1 || heads < 1 || ffn < 1 || vocab < 2 || max_positions < 1)
      throw Error("ERR_CONFIG", "model sizes must be positive (layers, hidden, heads, ffn, vocab, max_positions)");
    if (hidden % heads != 0) throw Error("ERR_CONFIG", "model.heads must divide model.hidden");
    if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size) throw Error("ERR_CONFIG", "tensor-parallel rank out of range");
    if (heads % tp_size != 0 || hidden % tp_size != 0 || ffn % tp_size != 0)
      throw Error("ERR_CONFIG", "parallel.tensor = " + std::to_string(tp_size) + " must divide model.heads (" +
                                    std::to_string(heads) + "), model.hidden (" + std::to_string(hidden) +
                                    ") and model.ffn (" + std::to_string(ffn) + ")");
    if (hidden_dropout < 0 || hidden_dropout >= 1 || attention_dropout < 0 || attention_dropout >= 1)
      throw Error("ERR_CONFIG", "dropout must be in [0, 1)");
  }
};

}  // namespace paratrain
