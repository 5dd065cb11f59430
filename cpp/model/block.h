// block.h — the transformer block part: self-attention and MLP, each with a residual connection and
// a LayerNorm, post-LN (BERT: the norm after each residual sum) or pre-LN (GPT-2: before each
// sublayer) by the stack's flag. Tensor parallelism (Megatron): QKV and MLP-up are column-parallel,
// attention-out and MLP-down row-parallel. A block's weights may serve several layers (ALBERT); each
// layer keeps its own activations.
#pragma once
#include <string>

#include "../kernels/backend.h"  // kernels::Buffer
#include "context.h"             // PassContext
#include "params.h"              // ParamLayout, Param

namespace paratrain {

// Shapes: N = B·T rows, H hidden, Hl = H/tp attention width on this rank, Fl = F/tp MLP width on this rank.
struct LayerActivations {
  kernels::Buffer<float> qkv;        // [N, 3·Hl]
  kernels::Buffer<float> attn_saved;  // what attention keeps for backward (CPU: the probabilities
                                      // [B, heads_l, T, T] before dropout; CUDA: the row logsumexp)
  kernels::Buffer<float> ctx;        // [N, Hl]
  kernels::Buffer<float> attn_proj;  // [N, H] attention output projection, before dropout
  kernels::Buffer<float> resid1;     // [N, H] x + attn (post-LN: the LayerNorm's input)
  kernels::Buffer<float> norm1;      // [N, H] post-LN: LN(resid1); pre-LN: LN(x)
  kernels::Buffer<float> norm1_mean, norm1_rstd;  // [N]
  kernels::Buffer<float> up;         // [N, Fl] before GELU
  kernels::Buffer<float> gelu;       // [N, Fl]
  kernels::Buffer<float> down;       // [N, H] before dropout
  kernels::Buffer<float> resid2;     // [N, H] post-LN: norm1 + mlp (the LayerNorm's input); pre-LN: unused
  kernels::Buffer<float> norm2;      // [N, H] pre-LN: LN(resid1); post-LN: unused (its output is the stream)
  kernels::Buffer<float> norm2_mean, norm2_rstd;
  void allocate(const StackSpec& s, int tp_size, int batch, int seq);
};

// Gradient scratch shared by the blocks of one stack.
struct BlockScratch {
  kernels::Buffer<float> d_h1, d_h2;  // [N, H]
  kernels::Buffer<float> d_qkv;       // [N, 3·Hl]
  kernels::Buffer<float> d_ffn;       // [N, Fl]
  kernels::Buffer<float> attn;        // attention's scratch (CPU: threads × 2 × T × T)
  void allocate(const StackSpec& s, int tp_size, int batch, int seq, int threads);
};

class Block {
 public:
  // Registers `<prefix>attn.*`, `<prefix>mlp.*` and the two norms, in the order the data flows.
  Block(const ModelSpec& spec, const StackSpec& stack, const std::string& prefix, ParamLayout& layout);
  void bind(const ParamLayout& layout, float* params, float* grads);
  int first_param() const { return first_; }

  // y[N,H] from x[N,H]; `stack`, `layer` name the dropout streams.
  void forward(const PassContext& ctx, LayerActivations& a, BlockScratch& s, const float* x, float* y, int stack,
               int layer) const;
  // dx[N,H]: ∂L/∂y in, ∂L/∂x out; accumulates the block's weight gradients.
  void backward(const PassContext& ctx, LayerActivations& a, BlockScratch& s, const float* x, float* dx, int stack,
                int layer) const;

 private:
  kernels::AttentionShape attention_shape(const PassContext& ctx, int stack, int layer) const;
  // The MLP's GELU fused into its GEMMs (the CUDA build: cuBLASLt epilogues): GPT-2's tanh form,
  // with a width its epilogues take. Same numbers either way on the CPU.
  bool fused_gelu() const;
  void mlp_up_forward(LayerActivations& la, const float* mlp_in, int N) const;       // up, gelu
  void mlp_down_backward(LayerActivations& la, BlockScratch& s, const float* d_down, int N) const;  // d_ffn
  const ModelSpec& spec_;
  const StackSpec& stack_;
  int first_ = -1;
  Param qkv_w_, qkv_b_;  // q|k|v weights [3·Hl, H] and biases [3·Hl], contiguous in the layout
  Param out_w_, out_b_;  // [H, Hl], [H]
  Param norm1_w_, norm1_b_, norm2_w_, norm2_b_;  // post-LN: after attention / after MLP; pre-LN: before them
  Param up_w_, up_b_;      // [Fl, H], [Fl]
  Param down_w_, down_b_;  // [H, Fl], [H]
};

}  // namespace paratrain
