// stack.h — a stack of transformer blocks over the shared embeddings: [projection E→H] → blocks
// (consecutive layers may share one block) → [final LayerNorm] → top, plus an optional pooler over
// each sequence's first token. Heads read `top()` / `pooled()` and hand their gradients back
// through `d_top()` / `d_pooled()`.
#pragma once
#include <cstddef>     // size_t
#include <functional>  // std::function
#include <vector>

#include "block.h"       // Block, LayerActivations, BlockScratch
#include "embeddings.h"  // Embeddings, EmbeddingActivations

namespace paratrain {

// Called during backward when the gradients in [offset, end of the flat buffer) are final.
using GradsReady = std::function<void(size_t offset)>;

class Stack {
 public:
  Stack(const ModelSpec& spec, int index, ParamLayout& layout);  // registers the stack's own tensors
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  void allocate(int batch, int seq, int threads);
  void bind(const ParamLayout& layout, float* params, float* grads);
  const StackSpec& spec() const { return stack_; }
  // The layout indices of the tensor groups in the order backward finalises them.
  std::vector<int> backward_groups() const;

  void forward(const PassContext& ctx, const Embeddings& embeddings, const int* tokens);
  const float* top() const;                         // [N, H]
  const float* pooled() const { return pooled_.data(); }  // [B, H]

  // Heads call these in backward: true for the first writer, which overwrites the buffer; later
  // writers accumulate.
  void begin_backward() { d_top_written_ = d_pooled_written_ = false; }
  bool claim_d_top();
  bool claim_d_pooled();
  float* d_top() { return d_top_; }                 // [N, H] ∂L/∂top
  float* d_pooled() { return d_pooled_.data(); }    // [B, H] ∂L/∂pooled

  // After the heads' backward: through the pooler, final norm, blocks, projection and embeddings.
  void backward(const PassContext& ctx, const Embeddings& embeddings, const int* tokens, const ParamLayout& layout,
                const GradsReady& ready);

 private:
  const ModelSpec& spec_;
  const StackSpec& stack_;
  const int index_;
  Param proj_w_, proj_b_, final_w_, final_b_, pool_w_, pool_b_;
  std::vector<Block> blocks_;  // one per layer group

  EmbeddingActivations embed_;
  kernels::Buffer<float> embed_out_;              // [N, E] with a projection (else the embeddings write stream_[0])
  std::vector<kernels::Buffer<float>> stream_;    // L+1 × [N, H]: the input of each layer, then the output
  std::vector<LayerActivations> layers_;
  kernels::Buffer<float> final_, final_mean_, final_rstd_;  // [N, H], [N]
  kernels::Buffer<int> cls_rows_;                 // [B]
  kernels::Buffer<float> pool_in_, pooled_;       // [B, H]
  // Gradients
  kernels::Buffer<float> d_x_;                    // [N, H] walking down the layers
  kernels::Buffer<float> d_final_;                // [N, H] ∂L/∂final-norm output
  kernels::Buffer<float> d_embed_out_;            // [N, E]
  kernels::Buffer<float> d_pooled_, d_cls_;       // [B, H]
  BlockScratch scratch_;
  float* d_top_ = nullptr;
  bool d_top_written_ = false, d_pooled_written_ = false;
};

}  // namespace paratrain
