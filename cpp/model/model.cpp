// model.cpp — the composition: forward runs the stacks in order, each followed by its heads; backward
// runs them in reverse (heads of a stack last to first, then the stack down to the embeddings), so
// gradients become final from the end of the parameter layout towards its start.
#include "model.h"

#include <algorithm>  // std::fill

#include "../common/allocation.h"  // allocating

namespace paratrain {

Model::Model(const ModelSpec& spec) : spec_(spec), layout_(spec.tp_rank, spec.tp_size) {
  spec_.validate();
  // Registration order = forward order: embeddings, then each stack followed by its heads.
  embeddings_ = std::make_unique<Embeddings>(spec_, layout_);
  heads_.resize(spec_.heads.size());
  for (size_t s = 0; s < spec_.stacks.size(); s++) {
    stacks_.push_back(std::make_unique<Stack>(spec_, static_cast<int>(s), layout_));
    for (size_t h = 0; h < spec_.heads.size(); h++)
      if (spec_.heads[h].stack == static_cast<int>(s)) heads_[h] = make_head(spec_, static_cast<int>(h), *embeddings_, layout_);
  }
  for (const auto& head : heads_) {
    loss_names_.push_back(head->spec().loss);
    metric_offset_.push_back(metric_names_.size());
    for (const std::string& m : head->metric_names()) metric_names_.push_back(m);
  }
  result_.losses.assign(heads_.size(), 0.0);
  result_.counts.assign(heads_.size(), 0);
  result_.metrics.assign(2 * metric_names_.size(), 0.0);
  check_backward_order();
}

// The data-parallel reducer treats "final" as a frontier moving from the end of the flat buffer to
// its start; the parts must therefore finish in exactly the reverse of their registration order.
void Model::check_backward_order() const {
  std::vector<int> order;
  for (size_t s = stacks_.size(); s-- > 0;) {
    for (size_t h = heads_.size(); h-- > 0;)
      if (heads_[h]->spec().stack == static_cast<int>(s) && heads_[h]->first_param() >= 0)
        order.push_back(heads_[h]->first_param());
    for (int g : stacks_[s]->backward_groups()) order.push_back(g);
  }
  for (size_t i = 1; i < order.size(); i++)
    if (order[i] >= order[i - 1])
      throw Error("ERR_INTERNAL", "the model's parts do not finish backward in reverse layout order (tensor " +
                                      layout_.at(order[i]).name + ")");
}

void Model::allocate(int max_batch, int max_seq, int max_preds, int threads) {
  if (max_seq > spec_.max_positions)
    throw Error("ERR_CONFIG", "sequence length " + std::to_string(max_seq) + " exceeds max positions " +
                                  std::to_string(spec_.max_positions));
  threads_ = threads;
  max_preds_ = max_preds;
  for (auto& s : stacks_) s->allocate(max_batch, max_seq, threads);
  for (auto& h : heads_)
    allocating("the " + h->spec().loss + " head's activations and logits", -1,
               [&] { h->allocate(max_batch, max_seq, max_preds); });
  bool sampling = false;
  for (const auto& h : heads_) sampling = sampling || h->spec().sample;
  allocating("the generator's sampled tokens", -1,
             [&] { sampled_.allocate(sampling ? static_cast<long>(max_batch) * max_seq : 0); });
}

void Model::bind(float* params, float* grads) {
  embeddings_->bind(layout_, params, grads);
  for (auto& s : stacks_) s->bind(layout_, params, grads);
  for (auto& h : heads_) h->bind(layout_, params, grads);
}

bool Model::has_masked_lm() const {
  for (const auto& h : heads_)
    if (h->spec().kind == HeadKind::MaskedLm) return true;
  return false;
}

const Head* Model::prediction_head() const {
  for (const auto& h : heads_)
    if (h->spec().kind == HeadKind::MaskedLm || h->spec().kind == HeadKind::CausalLm) return h.get();
  return nullptr;
}

const Head* Model::class_head() const {
  for (const auto& h : heads_)
    if (h->classes() > 0) return h.get();
  return nullptr;
}

const Head* Model::position_head() const {
  for (const auto& h : heads_)
    if (h->position_classes() > 0) return h.get();
  return nullptr;
}

const float* Model::top_hidden() const { return stacks_.back()->top(); }

int Model::top_hidden_size() const { return spec_.stacks.back().hidden; }

const ForwardResult& Model::forward(const MicroBatch& mb, const ForwardOptions& opt) {
  const PassContext ctx{spec_, *tp_, opt, mb, threads_};
  std::fill(result_.metrics.begin(), result_.metrics.end(), 0.0);
  for (size_t s = 0; s < stacks_.size(); s++) {
    Stack& stack = *stacks_[s];
    const int* tokens = stack.spec().input_from >= 0 ? sampled_.tokens.data() : mb.tokens;
    stack.forward(ctx, *embeddings_, tokens);
    for (size_t h = 0; h < heads_.size(); h++) {
      if (heads_[h]->spec().stack != static_cast<int>(s)) continue;
      const HeadLoss l = heads_[h]->forward(ctx, stack, sampled_, result_.metrics.data() + 2 * metric_offset_[h]);
      result_.losses[h] = l.value;
      result_.counts[h] = l.count;
    }
  }
  result_.loss = 0;
  for (size_t h = 0; h < heads_.size(); h++) result_.loss += heads_[h]->spec().weight * result_.losses[h];
  return result_;
}

void Model::backward(const MicroBatch& mb, const ForwardOptions& opt, const GradsReady& ready) {
  const PassContext ctx{spec_, *tp_, opt, mb, threads_};
  for (size_t s = stacks_.size(); s-- > 0;) {
    Stack& stack = *stacks_[s];
    stack.begin_backward();
    for (size_t h = heads_.size(); h-- > 0;) {
      Head& head = *heads_[h];
      if (head.spec().stack != static_cast<int>(s)) continue;
      head.backward(ctx, stack, sampled_);
      if (ready && head.first_param() >= 0) ready(static_cast<size_t>(layout_.at(head.first_param()).offset));
    }
    const int* tokens = stack.spec().input_from >= 0 ? sampled_.tokens.data() : mb.tokens;
    stack.backward(ctx, *embeddings_, tokens, layout_, ready);
  }
  if (ready) ready(static_cast<size_t>(embeddings_->first_offset(layout_)));
}

}  // namespace paratrain
