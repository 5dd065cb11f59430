// spec.cpp — the checks a spec must pass before any part is built.
#include "spec.h"

#include "../common/error.h"  // Error

namespace paratrain {

HeadKind head_kind_named(const std::string& name) {
  if (name == "masked-lm") return HeadKind::MaskedLm;
  if (name == "sentence-pair") return HeadKind::SentencePair;
  if (name == "causal-lm") return HeadKind::CausalLm;
  if (name == "replaced-token") return HeadKind::ReplacedToken;
  if (name == "sequence-classification") return HeadKind::SequenceClassification;
  if (name == "token-classification") return HeadKind::TokenClassification;
  if (name == "question-answering") return HeadKind::QuestionAnswering;
  throw Error("ERR_CONFIG", "head kind '" + name +
                                "' is not one of masked-lm, sentence-pair, causal-lm, replaced-token, "
                                "sequence-classification, token-classification, question-answering");
}

static std::string stack_name(const StackSpec& s, size_t i) {
  return s.prefix.empty() ? "stack " + std::to_string(i) : "stack '" + s.prefix.substr(0, s.prefix.size() - 1) + "'";
}

void ModelSpec::validate() const {
  auto fail = [](const std::string& what) { throw Error("ERR_CONFIG", what); };
  if (vocab < 2 || max_positions < 1) fail("model sizes must be positive (vocab >= 2, max_positions >= 1)");
  if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size) fail("tensor-parallel rank out of range");
  if (hidden_dropout < 0 || hidden_dropout >= 1 || attention_dropout < 0 || attention_dropout >= 1)
    fail("dropout must be in [0, 1)");
  if (embeddings.dim < 1 || embeddings.type_vocab < 0) fail("the embedding width must be positive");
  if (stacks.empty()) fail("a model needs at least one stack of blocks");
  const std::string tp = std::to_string(tp_size);
  for (size_t i = 0; i < stacks.size(); i++) {
    const StackSpec& s = stacks[i];
    const std::string name = stack_name(s, i);
    if (s.layers < 1 || s.hidden < 1 || s.heads < 1 || s.ffn < 1)
      fail(name + ": layers, hidden, heads and ffn must be positive");
    if (s.hidden % s.heads != 0)
      fail(name + ": heads (" + std::to_string(s.heads) + ") must divide hidden (" + std::to_string(s.hidden) + ")");
    if (s.groups < 1 || s.layers % s.groups != 0)
      fail(name + ": layer groups (" + std::to_string(s.groups) + ") must divide layers (" + std::to_string(s.layers) +
           ")");
    if (s.heads % tp_size != 0 || s.hidden % tp_size != 0 || s.ffn % tp_size != 0)
      fail("parallel.tensor = " + tp + " must divide " + name + "'s heads (" + std::to_string(s.heads) +
           "), hidden (" + std::to_string(s.hidden) + ") and ffn (" + std::to_string(s.ffn) + ")");
    if (!s.projection && s.hidden != embeddings.dim)
      fail(name + ": hidden (" + std::to_string(s.hidden) + ") differs from the embedding width (" +
           std::to_string(embeddings.dim) + ") but the stack has no projection");
    if (s.input_from >= 0) {
      if (s.input_from >= static_cast<int>(heads.size()) || !heads[s.input_from].sample ||
          heads[s.input_from].stack >= static_cast<int>(i))
        fail(name + " reads the samples of head " + std::to_string(s.input_from) +
             ", which must be a sampling masked-LM head of an earlier stack");
    }
  }
  int samplers = 0;
  for (size_t h = 0; h < heads.size(); h++) {
    const HeadSpec& hs = heads[h];
    if (hs.stack < 0 || hs.stack >= static_cast<int>(stacks.size()))
      fail("head '" + hs.loss + "' reads stack " + std::to_string(hs.stack) + ", which does not exist");
    if (hs.loss.empty()) fail("every head needs a loss name");
    if (!(hs.weight >= 0)) fail("head '" + hs.loss + "': the loss weight must be >= 0");
    if (hs.kind == HeadKind::SentencePair && !stacks[hs.stack].pooler)
      fail("head '" + hs.loss + "' classifies the pooled first token, but its stack has no pooler");
    if (hs.kind == HeadKind::SequenceClassification && !hs.dense && !stacks[hs.stack].pooler)
      fail("head '" + hs.loss + "' classifies the pooled first token, but its stack has no pooler");
    if ((hs.kind == HeadKind::SequenceClassification || hs.kind == HeadKind::TokenClassification) &&
        (hs.classes < 1 || hs.classes > 1000000))
      fail("head '" + hs.loss + "' needs between 1 and 1000000 classes (got " + std::to_string(hs.classes) + ")");
    if (hs.kind == HeadKind::TokenClassification && hs.classes < 2)
      fail("head '" + hs.loss + "': token classification needs at least 2 labels");
    if (hs.sample && hs.kind != HeadKind::MaskedLm) fail("head '" + hs.loss + "': only a masked-LM head samples");
    samplers += hs.sample;
    if (hs.kind == HeadKind::ReplacedToken) {
      const int from = stacks[hs.stack].input_from;
      if (from < 0) fail("head '" + hs.loss + "' detects replaced tokens, but its stack does not read sampled tokens");
    }
    for (size_t k = 0; k < h; k++)
      if (heads[k].loss == hs.loss) fail("two heads report the same loss name '" + hs.loss + "'");
  }
  if (samplers > 1) fail("at most one head may sample replacement tokens");
}

}  // namespace paratrain
