// stack.cpp — see stack.h. Shapes: B sequences of T tokens, N = B·T rows, E the embedding width,
// H the stack's hidden size.
#include "stack.h"

#include <string>

#include "../common/allocation.h"  // allocating

namespace paratrain {

using namespace kernels;

Stack::Stack(const ModelSpec& spec, int index, ParamLayout& layout)
    : spec_(spec), stack_(spec.stacks[static_cast<size_t>(index)]), index_(index) {
  const int64_t E = spec.embeddings.dim, H = stack_.hidden;
  const std::string& p = stack_.prefix;
  if (stack_.projection) {
    proj_w_.index = layout.add(p + "projection.weight", {H, E}, -1, true, spec.init_std);
    proj_b_.index = layout.add(p + "projection.bias", {H}, -1, false, 0);
  }
  blocks_.reserve(static_cast<size_t>(stack_.groups));
  for (int g = 0; g < stack_.groups; g++)
    blocks_.emplace_back(spec, stack_, p + "layers." + std::to_string(g) + ".", layout);
  if (stack_.final_norm) layout.add_norm(p + "final_norm.", H, final_w_, final_b_);
  if (stack_.pooler) {
    pool_w_.index = layout.add(p + "pooler.weight", {H, H}, -1, true, spec.init_std);
    pool_b_.index = layout.add(p + "pooler.bias", {H}, -1, false, 0);
  }
}

std::vector<int> Stack::backward_groups() const {
  std::vector<int> out;
  if (pool_w_) out.push_back(pool_w_.index);
  if (final_w_) out.push_back(final_w_.index);
  for (int g = stack_.groups - 1; g >= 0; g--) out.push_back(blocks_[static_cast<size_t>(g)].first_param());
  if (proj_w_) out.push_back(proj_w_.index);
  return out;
}

void Stack::allocate(int batch, int seq, int threads) {
  const long N = static_cast<long>(batch) * seq, H = stack_.hidden, E = spec_.embeddings.dim;
  // Each part is named, so that running out of memory says which one did not fit.
  const std::string of_stack =
      stack_.prefix.empty() ? "" : " of the " + stack_.prefix.substr(0, stack_.prefix.size() - 1);  // "generator."
  allocating("the embeddings' activations" + of_stack, -1, [&] {
    embed_.allocate(spec_, N);
    embed_out_.assign(stack_.projection ? N * E : 0, 0);
    d_embed_out_.assign(stack_.projection ? N * E : 0, 0);
  });
  allocating("the residual stream" + of_stack, -1, [&] {
    stream_.resize(static_cast<size_t>(stack_.layers) + 1);
    for (auto& x : stream_) x.assign(N * H, 0);
  });
  layers_.resize(static_cast<size_t>(stack_.layers));
  for (size_t i = 0; i < layers_.size(); i++)
    allocating("the activations of layer " + std::to_string(i) + " of " + std::to_string(layers_.size()) + of_stack,
               -1, [&] { layers_[i].allocate(stack_, spec_.tp_size, batch, seq); });
  allocating("the final norm's and pooler's activations" + of_stack, -1, [&] {
    const long final_rows = stack_.final_norm ? N : 0;
    final_.assign(final_rows * H, 0);
    final_mean_.assign(final_rows, 0);
    final_rstd_.assign(final_rows, 0);
    d_final_.assign(final_rows * H, 0);
    const long pooled_rows = stack_.pooler ? batch : 0;
    cls_rows_.assign(pooled_rows, 0);
    for (auto* b : {&pool_in_, &pooled_, &d_pooled_, &d_cls_}) b->assign(pooled_rows * H, 0);
    d_x_.assign(N * H, 0);
  });
  allocating("the layers' backward scratch and attention workspace" + of_stack, -1,
             [&] { scratch_.allocate(stack_, spec_.tp_size, batch, seq, threads); });
  d_top_ = stack_.final_norm ? d_final_.data() : d_x_.data();
}

void Stack::bind(const ParamLayout& layout, float* params, float* grads) {
  for (Param* p : {&proj_w_, &proj_b_, &final_w_, &final_b_, &pool_w_, &pool_b_}) p->bind(layout, params, grads);
  for (Block& b : blocks_) b.bind(layout, params, grads);
}

const float* Stack::top() const {
  return stack_.final_norm ? final_.data() : stream_[static_cast<size_t>(stack_.layers)].data();
}

bool Stack::claim_d_top() {
  const bool first = !d_top_written_;
  d_top_written_ = true;
  return first;
}

bool Stack::claim_d_pooled() {
  const bool first = !d_pooled_written_;
  d_pooled_written_ = true;
  return first;
}

void Stack::forward(const PassContext& ctx, const Embeddings& embeddings, const int* tokens) {
  const int B = ctx.mb.batch, T = ctx.mb.seq, N = B * T, H = stack_.hidden, E = spec_.embeddings.dim;
  float* x0 = stream_[0].data();
  if (stack_.projection) {
    embeddings.forward(ctx, embed_, tokens, embed_out_.data(), index_);
    linear_forward(x0, embed_out_.data(), proj_w_.w, proj_b_.w, N, E, H);  // [N,E] → [N,H]
  } else {
    embeddings.forward(ctx, embed_, tokens, x0, index_);
  }
  for (int l = 0; l < stack_.layers; l++)
    blocks_[static_cast<size_t>(stack_.layer_group(l))].forward(
        ctx, layers_[static_cast<size_t>(l)], scratch_, stream_[static_cast<size_t>(l)].data(),
        stream_[static_cast<size_t>(l) + 1].data(), index_, l);
  if (stack_.final_norm)
    layernorm_forward(final_.data(), final_mean_.data(), final_rstd_.data(),
                      stream_[static_cast<size_t>(stack_.layers)].data(), final_w_.w, final_b_.w, N, H,
                      spec_.layernorm_eps);
  if (stack_.pooler) {
    // pooled[B,H] = tanh(top[b·T]·Wpᵀ + bp): the first token ([CLS]) of every sequence.
    strided_rows(cls_rows_.data(), B, T);
    gather_rows(pool_in_.data(), top(), cls_rows_.data(), B, H);
    linear_forward(pooled_.data(), pool_in_.data(), pool_w_.w, pool_b_.w, B, H, H);
    tanh_forward(pooled_.data(), pooled_.data(), static_cast<long>(B) * H);
  }
}

void Stack::backward(const PassContext& ctx, const Embeddings& embeddings, const int* tokens,
                     const ParamLayout& layout, const GradsReady& ready) {
  const int B = ctx.mb.batch, N = ctx.rows(), H = stack_.hidden, E = spec_.embeddings.dim;
  const long NH = static_cast<long>(N) * H;
  const auto report = [&](const Param& p) {
    if (ready) ready(static_cast<size_t>(layout.at(p.index).offset));
  };
  if (stack_.pooler) {
    if (d_pooled_written_) {
      tanh_backward(d_pooled_.data(), d_pooled_.data(), pooled_.data(), static_cast<long>(B) * H);
      linear_backward(d_cls_.data(), pool_w_.g, pool_b_.g, d_pooled_.data(), pool_in_.data(), pool_w_.w, B, H, H,
                      false);
      if (claim_d_top()) fill(d_top_, NH, 0.0f);
      scatter_add_rows(d_top_, d_cls_.data(), cls_rows_.data(), B, H);
    }
    report(pool_w_);
  }
  if (claim_d_top()) fill(d_top_, NH, 0.0f);  // no head sent a gradient
  float* dx = d_x_.data();
  if (stack_.final_norm) {
    layernorm_backward(dx, final_w_.g, final_b_.g, d_final_.data(), stream_[static_cast<size_t>(stack_.layers)].data(),
                       final_w_.w, final_mean_.data(), final_rstd_.data(), N, H, false);
    report(final_w_);
  }
  for (int l = stack_.layers - 1; l >= 0; l--) {
    const Block& block = blocks_[static_cast<size_t>(stack_.layer_group(l))];
    block.backward(ctx, layers_[static_cast<size_t>(l)], scratch_, stream_[static_cast<size_t>(l)].data(), dx, index_,
                   l);
    // A shared block's gradient is final after its first layer, the last one backward reaches.
    if (stack_.first_of_group(l) && ready) ready(static_cast<size_t>(layout.at(block.first_param()).offset));
  }
  float* d_embed = dx;
  if (stack_.projection) {
    linear_backward(d_embed_out_.data(), proj_w_.g, proj_b_.g, dx, embed_out_.data(), proj_w_.w, N, E, H, false);
    report(proj_w_);
    d_embed = d_embed_out_.data();
  }
  embeddings.backward(ctx, embed_, tokens, d_embed, index_);
}

}  // namespace paratrain
