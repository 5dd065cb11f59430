// block.cpp — see block.h.
#include "block.h"

#include <cmath>  // std::sqrt

#include "tensor_parallel.h"  // tp_reduce_backward, row_parallel_linear_forward

namespace paratrain {

using namespace kernels;

// Attention's shape as far as sizes go (masks and dropout do not change them).
static AttentionShape attention_sizes(const StackSpec& s, int tp_size, int batch, int seq) {
  return AttentionShape{batch, seq, s.heads / tp_size, s.head_dim(), s.causal, nullptr, 0.0f, 0};
}

void LayerActivations::allocate(const StackSpec& s, int tp_size, int batch, int seq) {
  const long N = static_cast<long>(batch) * seq;
  const long H = s.hidden, Hl = s.hidden / tp_size, Fl = s.ffn / tp_size;
  const bool post = s.norm == NormPlacement::Post;
  qkv.assign(N * 3 * Hl, 0);
  attn_saved.assign(attention_saved_floats(attention_sizes(s, tp_size, batch, seq)), 0);
  ctx.assign(N * Hl, 0);
  attn_proj.assign(N * H, 0);
  resid1.assign(N * H, 0);
  norm1.assign(N * H, 0);
  norm1_mean.assign(N, 0);
  norm1_rstd.assign(N, 0);
  up.assign(N * Fl, 0);
  gelu.assign(N * Fl, 0);
  down.assign(N * H, 0);
  resid2.assign(post ? N * H : 0, 0);  // pre-LN: the layer output lives in the stream
  norm2.assign(post ? 0 : N * H, 0);
  norm2_mean.assign(N, 0);
  norm2_rstd.assign(N, 0);
}

void BlockScratch::allocate(const StackSpec& s, int tp_size, int batch, int seq, int threads) {
  const long N = static_cast<long>(batch) * seq;
  const long H = s.hidden, Hl = s.hidden / tp_size, Fl = s.ffn / tp_size;
  d_h1.assign(N * H, 0);
  d_h2.assign(N * H, 0);
  d_qkv.assign(N * 3 * Hl, 0);
  d_ffn.assign(N * Fl, 0);
  attn.assign(attention_scratch_floats(attention_sizes(s, tp_size, batch, seq), threads), 0);
}

Block::Block(const ModelSpec& spec, const StackSpec& stack, const std::string& p, ParamLayout& layout)
    : spec_(spec), stack_(stack) {
  const int64_t H = stack.hidden, F = stack.ffn;
  const double std = spec.init_std;
  // GPT-2 scales the init of projections that write into the residual stream by 1/sqrt(2·layers).
  const double resid_std = stack.scaled_residual_init ? std / std::sqrt(2.0 * stack.layers) : std;
  const bool pre = stack.norm == NormPlacement::Pre;
  const auto norm = [&](Param& w, Param& b, const std::string& name) { layout.add_norm(p + name + ".", H, w, b); };
  if (pre) norm(norm1_w_, norm1_b_, "attn_norm");
  qkv_w_.index = layout.add(p + "attn.q.weight", {H, H}, 0, true, std);
  for (const char* m : {"k", "v"}) layout.add(p + "attn." + m + ".weight", {H, H}, 0, true, std);
  qkv_b_.index = layout.add(p + "attn.q.bias", {H}, 0, false, 0);
  for (const char* m : {"k", "v"}) layout.add(p + "attn." + m + ".bias", {H}, 0, false, 0);
  out_w_.index = layout.add(p + "attn.out.weight", {H, H}, 1, true, resid_std);
  out_b_.index = layout.add(p + "attn.out.bias", {H}, -1, false, 0);
  if (pre) norm(norm2_w_, norm2_b_, "mlp_norm");
  else norm(norm1_w_, norm1_b_, "attn_norm");
  up_w_.index = layout.add(p + "mlp.up.weight", {F, H}, 0, true, std);
  up_b_.index = layout.add(p + "mlp.up.bias", {F}, 0, false, 0);
  down_w_.index = layout.add(p + "mlp.down.weight", {H, F}, 1, true, resid_std);
  down_b_.index = layout.add(p + "mlp.down.bias", {H}, -1, false, 0);
  if (!pre) norm(norm2_w_, norm2_b_, "mlp_norm");
  first_ = pre ? norm1_w_.index : qkv_w_.index;
}

void Block::bind(const ParamLayout& layout, float* params, float* grads) {
  for (Param* p : {&qkv_w_, &qkv_b_, &out_w_, &out_b_, &norm1_w_, &norm1_b_, &norm2_w_, &norm2_b_, &up_w_, &up_b_,
                   &down_w_, &down_b_})
    p->bind(layout, params, grads);
}

AttentionShape Block::attention_shape(const PassContext& ctx, int stack, int layer) const {
  const int heads_l = stack_.heads / spec_.tp_size;
  return AttentionShape{ctx.mb.batch,
                        ctx.mb.seq,
                        heads_l,
                        stack_.head_dim(),
                        stack_.causal,
                        stack_.causal ? nullptr : ctx.mb.key_mask,
                        ctx.attention_dropout(),
                        ctx.dropout_key(site_attn_probs(stack, layer, spec_.tp_rank))};
}

bool Block::fused_gelu() const { return spec_.gelu == GeluForm::Tanh && (stack_.ffn / spec_.tp_size) % 8 == 0; }

// up[N,Fl] = mlp_in·Wupᵀ + b;  gelu[N,Fl] = GELU(up)
void Block::mlp_up_forward(LayerActivations& la, const float* mlp_in, int N) const {
  const int H = stack_.hidden, Fl = stack_.ffn / spec_.tp_size;
  if (fused_gelu()) {
    linear_gelu_forward(la.gelu.data(), la.up.data(), mlp_in, up_w_.w, up_b_.w, N, H, Fl);
    return;
  }
  linear_forward(la.up.data(), mlp_in, up_w_.w, up_b_.w, N, H, Fl);  // [N,Fl]
  gelu_forward(la.gelu.data(), la.up.data(), static_cast<long>(N) * Fl, spec_.gelu);
}

// d_ffn[N,Fl] = ∂L/∂up from d_down[N,H] = ∂L/∂down; accumulates the down projection's gradients.
void Block::mlp_down_backward(LayerActivations& la, BlockScratch& s, const float* d_down, int N) const {
  const int H = stack_.hidden, Fl = stack_.ffn / spec_.tp_size;
  if (fused_gelu()) {
    linear_backward(static_cast<float*>(nullptr), down_w_.g, down_b_.g, d_down, la.gelu.data(), down_w_.w, N, Fl, H,
                    false);
    linear_backward_input_dgelu(s.d_ffn.data(), d_down, down_w_.w, la.up.data(), N, Fl, H);
    return;
  }
  linear_backward(s.d_ffn.data(), down_w_.g, down_b_.g, d_down, la.gelu.data(), down_w_.w, N, Fl, H, false);
  gelu_backward(s.d_ffn.data(), s.d_ffn.data(), la.up.data(), static_cast<long>(N) * Fl, spec_.gelu);
}

void Block::forward(const PassContext& ctx, LayerActivations& la, BlockScratch& s, const float* x, float* y,
                    int stack, int layer) const {
  const int N = ctx.rows(), H = stack_.hidden, Hl = H / spec_.tp_size, Fl = stack_.ffn / spec_.tp_size;
  const float eps = spec_.layernorm_eps, p_hidden = ctx.hidden_dropout();
  const bool post = stack_.norm == NormPlacement::Post;
  const long NH = static_cast<long>(N) * H;
  Communicator& tp = ctx.tp;
  const AttentionShape shape = attention_shape(ctx, stack, layer);
  // Attention input: post-LN reads the stream, pre-LN its LayerNorm.
  const float* attn_in = x;
  if (!post) {
    layernorm_forward(la.norm1.data(), la.norm1_mean.data(), la.norm1_rstd.data(), x, norm1_w_.w, norm1_b_.w, N, H,
                      eps);
    attn_in = la.norm1.data();
  }
  linear_forward(la.qkv.data(), attn_in, qkv_w_.w, qkv_b_.w, N, H, 3 * Hl);  // [N,3Hl]
  attention_forward(la.ctx.data(), la.attn_saved.data(), la.qkv.data(), shape, s.attn.data());
  row_parallel_linear_forward(tp, la.attn_proj.data(), la.ctx.data(), out_w_.w, out_b_.w, N, Hl, H);  // g
  residual_dropout_forward(la.resid1.data(), x, la.attn_proj.data(), NH, p_hidden,
                           ctx.dropout_key(site_attn_out(stack, layer)));
  // MLP input: post-LN normalises the residual sum into norm1, pre-LN into norm2.
  const float* mlp_in;
  if (post) {
    layernorm_forward(la.norm1.data(), la.norm1_mean.data(), la.norm1_rstd.data(), la.resid1.data(), norm1_w_.w,
                      norm1_b_.w, N, H, eps);
    mlp_in = la.norm1.data();
  } else {
    layernorm_forward(la.norm2.data(), la.norm2_mean.data(), la.norm2_rstd.data(), la.resid1.data(), norm2_w_.w,
                      norm2_b_.w, N, H, eps);
    mlp_in = la.norm2.data();
  }
  mlp_up_forward(la, mlp_in, N);  // [N,Fl]
  row_parallel_linear_forward(tp, la.down.data(), la.gelu.data(), down_w_.w, down_b_.w, N, Fl, H);  // g
  if (post) {
    residual_dropout_forward(la.resid2.data(), mlp_in, la.down.data(), NH, p_hidden,
                             ctx.dropout_key(site_mlp_out(stack, layer)));
    layernorm_forward(y, la.norm2_mean.data(), la.norm2_rstd.data(), la.resid2.data(), norm2_w_.w, norm2_b_.w, N, H,
                      eps);
  } else {
    residual_dropout_forward(y, la.resid1.data(), la.down.data(), NH, p_hidden,
                             ctx.dropout_key(site_mlp_out(stack, layer)));
  }
}

void Block::backward(const PassContext& ctx, LayerActivations& la, BlockScratch& s, const float* x, float* dx,
                     int stack, int layer) const {
  const int N = ctx.rows(), H = stack_.hidden, Hl = H / spec_.tp_size, Fl = stack_.ffn / spec_.tp_size;
  const long NH = static_cast<long>(N) * H;
  const float p_hidden = ctx.hidden_dropout();
  Communicator& tp = ctx.tp;
  // Column-parallel input gradients are partial sums (f's backward all-reduce). Where they add onto
  // a replicated residual gradient, only TP rank 0 keeps the residual before the sum.
  const bool keep_residual = spec_.tp_rank == 0;
  const AttentionShape shape = attention_shape(ctx, stack, layer);
  float* d1 = s.d_h1.data();
  float* d2 = s.d_h2.data();
  if (stack_.norm == NormPlacement::Post) {
    // dx = ∂L/∂LN2(resid2). resid2 = norm1 + drop(down); norm1 = LN1(resid1); resid1 = x + drop(proj).
    layernorm_backward(d1, norm2_w_.g, norm2_b_.g, dx, la.resid2.data(), norm2_w_.w, la.norm2_mean.data(),
                       la.norm2_rstd.data(), N, H, false);                                      // d1 = ∂resid2
    dropout_backward(dx, d1, NH, p_hidden, ctx.dropout_key(site_mlp_out(stack, layer)));       // dx = ∂down
    mlp_down_backward(la, s, dx, N);                                                            // d_ffn = ∂up
    linear_backward(d1, up_w_.g, up_b_.g, s.d_ffn.data(), la.norm1.data(), up_w_.w, N, H, Fl, keep_residual);
    tp_reduce_backward(tp, d1, NH);                                                             // d1 = ∂norm1 (f)
    layernorm_backward(dx, norm1_w_.g, norm1_b_.g, d1, la.resid1.data(), norm1_w_.w, la.norm1_mean.data(),
                       la.norm1_rstd.data(), N, H, false);                                      // dx = ∂resid1
    dropout_backward(d1, dx, NH, p_hidden, ctx.dropout_key(site_attn_out(stack, layer)));      // d1 = ∂proj
    linear_backward(d2, out_w_.g, out_b_.g, d1, la.ctx.data(), out_w_.w, N, Hl, H, false);     // d2 = ∂ctx
    attention_backward(s.d_qkv.data(), d2, la.qkv.data(), la.ctx.data(), la.attn_saved.data(), shape, s.attn.data());
    linear_backward(dx, qkv_w_.g, qkv_b_.g, s.d_qkv.data(), x, qkv_w_.w, N, H, 3 * Hl, keep_residual);
    tp_reduce_backward(tp, dx, NH);                                                             // dx = ∂x (f)
  } else {
    // dx = ∂y, y = resid1 + drop(down); down from LN2(resid1); resid1 = x + drop(proj); proj from LN1(x).
    dropout_backward(d1, dx, NH, p_hidden, ctx.dropout_key(site_mlp_out(stack, layer)));       // d1 = ∂down
    mlp_down_backward(la, s, d1, N);                                                            // d_ffn = ∂up
    linear_backward(d2, up_w_.g, up_b_.g, s.d_ffn.data(), la.norm2.data(), up_w_.w, N, H, Fl, false);
    tp_reduce_backward(tp, d2, NH);                                                             // d2 = ∂norm2 (f)
    layernorm_backward(dx, norm2_w_.g, norm2_b_.g, d2, la.resid1.data(), norm2_w_.w, la.norm2_mean.data(),
                       la.norm2_rstd.data(), N, H, true);                                       // dx = ∂resid1
    dropout_backward(d1, dx, NH, p_hidden, ctx.dropout_key(site_attn_out(stack, layer)));      // d1 = ∂proj
    linear_backward(d2, out_w_.g, out_b_.g, d1, la.ctx.data(), out_w_.w, N, Hl, H, false);     // d2 = ∂ctx
    attention_backward(s.d_qkv.data(), d2, la.qkv.data(), la.ctx.data(), la.attn_saved.data(), shape, s.attn.data());
    linear_backward(d1, qkv_w_.g, qkv_b_.g, s.d_qkv.data(), la.norm1.data(), qkv_w_.w, N, H, 3 * Hl, false);
    tp_reduce_backward(tp, d1, NH);                                                             // d1 = ∂norm1 (f)
    layernorm_backward(dx, norm1_w_.g, norm1_b_.g, d1, x, norm1_w_.w, la.norm1_mean.data(), la.norm1_rstd.data(), N,
                       H, true);                                                                // dx = ∂x
  }
}

}  // namespace paratrain
