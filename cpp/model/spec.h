// spec.h — what a model is made of: the shared embeddings, one or more stacks of transformer blocks,
// and heads with named, weighted losses. BERT, GPT-2, RoBERTa, ALBERT and ELECTRA are specs
// (built in src/engine/spec.ts); the engine composes the parts a spec names (docs/models.md).
#pragma once
#include <string>
#include <vector>

#include "../kernels/gelu_form.h"  // GeluForm

namespace paratrain {

enum class NormPlacement { Post, Pre };  // BERT: LayerNorm after each residual sum; GPT-2: before each sublayer
enum class HeadKind {
  MaskedLm,
  SentencePair,
  CausalLm,
  ReplacedToken,
  SequenceClassification,  // fine-tuning: one label (or value) per sequence
  TokenClassification,     // fine-tuning: one label per position
  QuestionAnswering,       // fine-tuning: an answer span's start and end position per sequence
};
// "masked-lm", "sentence-pair", "causal-lm", "replaced-token", "sequence-classification",
// "token-classification", "question-answering" (the names specs use); throws ERR_CONFIG.
HeadKind head_kind_named(const std::string& name);

// Word, position and (optional) segment embeddings, summed, optionally normalised; shared by every
// stack of the model (ELECTRA's generator and discriminator embed with the same weights).
struct EmbeddingSpec {
  int dim = 0;         // E: the width of every embedding row (ALBERT/ELECTRA: smaller than the hidden size)
  int type_vocab = 0;  // segment rows: BERT 2, RoBERTa 1, GPT-2 0 (none)
  bool norm = false;   // LayerNorm after the sum (not GPT-2)
};

// A stack: [projection E→H] → `layers` transformer blocks → [final LayerNorm], [pooler over [CLS]].
struct StackSpec {
  std::string prefix;  // parameter-name prefix: "" for the main stack, "generator." for ELECTRA's
  int layers = 0;
  int groups = 0;  // distinct blocks; consecutive layers share one (ALBERT: 1; no sharing: = layers)
  int hidden = 0, heads = 0, ffn = 0;
  NormPlacement norm = NormPlacement::Post;
  bool causal = false;                // GPT-2's causal attention (else: the key-padding mask)
  bool projection = false;            // Linear E→H between the embeddings and the first block
  bool final_norm = false;            // LayerNorm over the last block's output (pre-LN stacks)
  bool pooler = false;                // tanh(Linear) over each sequence's first token (BERT/ALBERT)
  bool scaled_residual_init = false;  // GPT-2: residual projections start at std/√(2·layers)
  int input_from = -1;                // -1: the batch's tokens; else the head whose samples it reads (ELECTRA)

  int head_dim() const { return hidden / heads; }
  int layer_group(int layer) const { return layer / (layers / groups); }
  bool first_of_group(int layer) const { return layer % (layers / groups) == 0; }
};

struct HeadSpec {
  HeadKind kind = HeadKind::MaskedLm;
  int stack = 0;        // the stack whose output it reads
  std::string prefix;   // parameter-name prefix ("mlm", "generator.mlm", "nsp", "sop", "rtd"; unused by causal LM)
  std::string loss;     // the loss's name in every report: "mlm", "nsp", "sop", "lm", "rtd"
  float weight = 1.0f;  // the objective is Σ weight·loss (ELECTRA: rtd 50)
  bool sample = false;  // masked LM: draw a token at every masked position for a later stack (ELECTRA)
  // Fine-tuning heads.
  int classes = 0;  // sequence/token classification: labels (sequence classification with 1: regression, MSE)
  // Sequence classification: false reads the stack's pooler (BERT, ALBERT: pooled → dropout →
  // classifier); true reads the first token of the top through its own dense layer (RoBERTa,
  // ELECTRA: dropout → dense → activation → dropout → out_proj).
  bool dense = false;
  bool dense_gelu = false;  // the dense layer's activation: GELU (ELECTRA) or tanh (RoBERTa)
};

// This rank's share of the vocabulary (Megatron's vocabulary-parallel embedding and softmax): with
// TP the vocabulary is padded to a multiple of 128·tp so every rank holds as many rows; padding rows
// stay zero and never enter the softmax.
struct VocabShard {
  int vocab = 0, tp_rank = 0, tp_size = 1;
  int padded() const { return tp_size == 1 ? vocab : (vocab + 128 * tp_size - 1) / (128 * tp_size) * 128 * tp_size; }
  int local() const { return padded() / tp_size; }
  int start() const { return tp_rank * local(); }
  // Rows of this shard that are real tokens (the rest is padding).
  int valid() const {
    const int n = vocab - start();
    return n < 0 ? 0 : (n > local() ? local() : n);
  }
};

struct ModelSpec {
  int vocab = 0, max_positions = 0;
  float layernorm_eps = 1e-12f;
  GeluForm gelu = GeluForm::Erf;
  float hidden_dropout = 0.1f, attention_dropout = 0.1f;
  double init_std = 0.02;
  EmbeddingSpec embeddings;
  std::vector<StackSpec> stacks;
  std::vector<HeadSpec> heads;
  // Megatron tensor parallelism: this rank holds heads/tp of every stack's attention heads and ffn/tp
  // of its MLP columns, and vocab/tp rows of the word embedding.
  int tp_rank = 0, tp_size = 1;

  VocabShard vocab_shard() const { return {vocab, tp_rank, tp_size}; }
  void validate() const;  // throws ERR_CONFIG naming what is wrong
};

}  // namespace paratrain
