// embeddings.h — the token embedding part: word (vocabulary-parallel) + position (+ segment) rows of
// width E, summed, optionally normalised, then dropout. One set of weights; each stack that embeds
// (ELECTRA: generator and discriminator) keeps its own activations.
#pragma once
#include "../kernels/backend.h"  // kernels::Buffer
#include "context.h"             // PassContext
#include "params.h"              // ParamLayout, Param

namespace paratrain {

struct EmbeddingActivations {
  kernels::Buffer<float> embed;             // [N, E] the sum, before the LayerNorm
  kernels::Buffer<float> mean, rstd;        // [N]
  kernels::Buffer<float> d_embed;           // [N, E] gradient scratch (with the LayerNorm)
  void allocate(const ModelSpec& spec, long rows);
};

class Embeddings {
 public:
  Embeddings(const ModelSpec& spec, ParamLayout& layout);  // registers embeddings.*
  void bind(const ParamLayout& layout, float* params, float* grads);
  int64_t first_offset(const ParamLayout& layout) const { return layout.at(word_.index).offset; }
  const Param& word() const { return word_; }

  // out[N,E] = dropout(LN(word[tokens] + position + segment)); `tokens` may differ from the batch's.
  void forward(const PassContext& ctx, EmbeddingActivations& a, const int* tokens, float* out, int stack) const;
  // d_out[N,E] = ∂L/∂out (consumed); accumulates into the embedding gradients.
  void backward(const PassContext& ctx, EmbeddingActivations& a, const int* tokens, float* d_out, int stack) const;

 private:
  const ModelSpec& spec_;
  Param word_, position_, segment_, norm_w_, norm_b_;
};

}  // namespace paratrain
