// engine.cpp — the training step: zero gradients, forward+backward per micro-batch (gradients
// accumulate), average gradients over the data-parallel group, one optimizer update.
#include "engine.h"

#include <cblas.h>  // openblas_set_num_threads
#include <algorithm>  // std::min
#include <chrono>     // steady_clock: data-parallel wait
#include <cmath>    // std::isfinite
#include <string>   // std::stoi

#ifdef _OPENMP
#include <omp.h>  // omp_set_num_threads
#endif

namespace paratrain {

MicroBatch StagedBatch::view() const {
  MicroBatch mb;
  mb.batch = batch;
  mb.seq = seq;
  mb.tokens = tokens.data();
  mb.labels = labels.data();
  mb.segments = has_segments ? segments.data() : nullptr;
  mb.key_mask = has_mask ? key_mask.data() : nullptr;
  mb.nsp_labels = has_nsp ? nsp_labels.data() : nullptr;
  return mb;
}

static int default_predictions(const EngineConfig& c) {
  return c.max_predictions > 0 ? c.max_predictions : c.micro_batch * c.seq_len;
}

Engine::Engine(const EngineConfig& cfg)
    : cfg_(cfg),
      layout_(cfg.model),
      params_(layout_.total(), 0.0f),
      grads_(layout_.total(), 0.0f),
      optimizer_(cfg.optimizer, layout_),
      model_(cfg.model, cfg.micro_batch, cfg.seq_len, default_predictions(cfg), cfg.threads),
      staged_(cfg.grad_accum) {
  if (cfg.micro_batch < 1 || cfg.seq_len < 1 || cfg.grad_accum < 1 || cfg.threads < 1)
    throw Error("ERR_CONFIG", "micro_batch, seq_len, grad_accum and threads must be at least 1");
  if (cfg.dp_size < 1 || cfg.dp_rank < 0 || cfg.dp_rank >= cfg.dp_size)
    throw Error("ERR_CONFIG", "data-parallel rank out of range");
  weights_ = bind_weights(layout_, cfg.model, params_.data());
  weight_grads_ = bind_weights(layout_, cfg.model, grads_.data());
  // Backward finalises the heads (stored after the layers), then layers L−1 … 0, then embeddings.
  const int L = cfg.model.layers;
  stage_offsets_.assign(L + 1, static_cast<size_t>(layout_.total()));
  for (const ParamInfo& p : layout_.params()) {
    size_t* slot = nullptr;
    if (p.name.rfind("layers.", 0) == 0) {
      slot = &stage_offsets_[std::stoi(p.name.substr(7))];
    } else if (p.name.rfind("embeddings.", 0) != 0) {
      slot = &stage_offsets_[L];
    }
    if (slot) *slot = std::min(*slot, static_cast<size_t>(p.offset));
  }
}

void Engine::set_communicators(std::unique_ptr<Communicator> tp, std::unique_ptr<Communicator> dp) {
  if (!tp || !dp || tp->size() != cfg_.model.tp_size || tp->rank() != cfg_.model.tp_rank ||
      dp->size() != cfg_.dp_size || dp->rank() != cfg_.dp_rank)
    throw Error("ERR_CONFIG", "the communicators do not match the engine's tensor/data-parallel ranks");
  reducer_.reset();
  tp_owned_ = std::move(tp);
  dp_owned_ = std::move(dp);
  tensor_parallel_ = tp_owned_.get();
  model_.set_tensor_parallel(tensor_parallel_);
  if (cfg_.dp_size > 1) reducer_ = std::make_unique<GradientReducer>(*dp_owned_, cfg_.bucket_elems);
}

void Engine::require_groups() const {
  if (tensor_parallel_->size() != cfg_.model.tp_size || (cfg_.dp_size > 1 && !reducer_))
    throw Error("ERR_CONFIG", "this engine is one rank of a tensor/data-parallel job (tp " +
                                  std::to_string(cfg_.model.tp_size) + ", dp " + std::to_string(cfg_.dp_size) +
                                  "): create it with its connected DataPlane before training or gathering");
}

// Every rank of the job must learn of a request raised by any one of them at the same step: the
// flags are summed over the tensor-parallel group here and over the data-parallel group with the
// metrics, which covers the whole TP × DP grid. Two doubles per step; no extra round trip.
void Engine::agree_requests(StepMetrics& m) const {
  if (tensor_parallel_->size() <= 1) return;
  double flags[2] = {(m.requests & kRequestSave) ? 1.0 : 0.0, (m.requests & kRequestStop) ? 1.0 : 0.0};
  tensor_parallel_->all_reduce_sum(flags, 2);
  m.requests = (flags[0] > 0 ? kRequestSave : 0u) | (flags[1] > 0 ? kRequestStop : 0u);
}

void Engine::average_metrics(StepMetrics& m) const {
  if (!reducer_) return;
  // Sums over replicas; the means were per replica over its micro-batches.
  double v[8] = {m.loss * m.batches,
                 m.lm_loss * m.batches,
                 m.nsp_loss * m.batches,
                 static_cast<double>(m.batches),
                 static_cast<double>(m.tokens),
                 static_cast<double>(m.targets),
                 (m.requests & kRequestSave) ? 1.0 : 0.0,
                 (m.requests & kRequestStop) ? 1.0 : 0.0};
  reducer_->all_reduce_now(v, 8);
  m.requests = (v[6] > 0 ? kRequestSave : 0u) | (v[7] > 0 ? kRequestStop : 0u);
  m.batches = static_cast<long>(v[3]);
  const double inv = m.batches > 0 ? 1.0 / static_cast<double>(m.batches) : 0.0;
  m.loss = v[0] * inv;
  m.lm_loss = v[1] * inv;
  m.nsp_loss = v[2] * inv;
  m.tokens = static_cast<long>(v[4]);
  m.targets = static_cast<long>(v[5]);
}

void Engine::use_threads() const {
  // Both OpenMP (our loops) and OpenBLAS (its OpenMP build) use the same team size, set on the
  // thread that runs the step, so the cores are shared without oversubscription.
#ifdef _OPENMP
  omp_set_num_threads(cfg_.threads);
#endif
  openblas_set_num_threads(cfg_.threads);
}

void Engine::init_params(uint64_t seed) {
  use_threads();
  paratrain::init_params(layout_, cfg_.model, seed, params_.data());
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  std::fill(optimizer_.m().begin(), optimizer_.m().end(), 0.0f);
  std::fill(optimizer_.v().begin(), optimizer_.v().end(), 0.0f);
  optimizer_.set_step_count(0);
}

StagedBatch& Engine::stage(int slot) {
  if (slot < 0 || slot >= cfg_.grad_accum)
    throw Error("ERR_BATCH", "at most " + std::to_string(cfg_.grad_accum) + " micro-batches per step (train.grad_accum)");
  return staged_[slot];
}

void Engine::check_staged(int slot) const {
  const StagedBatch& s = staged_[slot];
  const bool bert = cfg_.model.arch == Arch::Bert;
  const auto where = "micro-batch " + std::to_string(slot) + ": ";
  if (s.batch < 1 || s.batch > cfg_.micro_batch)
    throw Error("ERR_BATCH", where + "batch size " + std::to_string(s.batch) + " outside 1.." +
                                 std::to_string(cfg_.micro_batch));
  if (s.seq < 1 || s.seq > cfg_.seq_len)
    throw Error("ERR_BATCH", where + "sequence length " + std::to_string(s.seq) + " outside 1.." +
                                 std::to_string(cfg_.seq_len));
  const size_t N = static_cast<size_t>(s.batch) * s.seq;
  if (s.tokens.size() != N || s.labels.size() != N)
    throw Error("ERR_BATCH", where + "tokens and labels must hold batch·seq = " + std::to_string(N) + " entries");
  const int V = cfg_.model.vocab;
  long targets = 0;
  for (size_t i = 0; i < N; i++) {
    if (s.tokens[i] < 0 || s.tokens[i] >= V)
      throw Error("ERR_BATCH", where + "token id " + std::to_string(s.tokens[i]) + " at " + std::to_string(i) +
                                   " is outside the vocabulary [0, " + std::to_string(V) + ")");
    if (s.labels[i] != kIgnoreIndex && (s.labels[i] < 0 || s.labels[i] >= V))
      throw Error("ERR_BATCH", where + "label " + std::to_string(s.labels[i]) + " is neither -100 nor a token id");
    targets += s.labels[i] != kIgnoreIndex;
  }
  if (bert) {
    if (!s.has_segments || s.segments.size() != N || !s.has_mask || s.key_mask.size() != N)
      throw Error("ERR_BATCH", where + "BERT batches need segments and attentionMask of batch·seq entries");
    for (size_t i = 0; i < N; i++)
      if (s.segments[i] != 0 && s.segments[i] != 1) throw Error("ERR_BATCH", where + "segment ids must be 0 or 1");
    for (int b = 0; b < s.batch; b++)
      if (!s.key_mask[static_cast<size_t>(b) * s.seq])
        throw Error("ERR_BATCH", where + "the first token of every sequence must be unmasked ([CLS])");
    if (targets > default_predictions(cfg_))
      throw Error("ERR_BATCH", where + std::to_string(targets) + " masked positions exceed the limit of " +
                                   std::to_string(default_predictions(cfg_)) + " (data.max_predictions)");
    if (s.has_nsp) {
      if (s.nsp_labels.size() != static_cast<size_t>(s.batch))
        throw Error("ERR_BATCH", where + "nspLabels must hold one label per sequence");
      for (int v : s.nsp_labels)
        if (v != 0 && v != 1 && v != kIgnoreIndex) throw Error("ERR_BATCH", where + "nsp labels must be 0, 1 or -100");
    }
  }
}

StepMetrics Engine::forward_backward(int micro_batches, uint64_t step, uint32_t requests) {
  require_groups();
  use_threads();
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  StepMetrics out;
  ForwardOptions opt;
  opt.training = true;
  opt.grad_scale = 1.0f / static_cast<float>(micro_batches);
  opt.dropout_seed = cfg_.seed;
  // On the last micro-batch, each group of gradients is averaged over the data-parallel replicas
  // as soon as backward has finalised it, while backward goes on.
  const GradsReady bucket_ready = [this](int stage) {
    reducer_->ready_from(stage < 0 ? 0 : stage_offsets_[static_cast<size_t>(stage)]);
  };
  for (int i = 0; i < micro_batches; i++) {
    const MicroBatch mb = staged_[i].view();
    // Dropout streams by global micro-batch index: replica r's micro-batch i is the single-process
    // run's micro-batch r·accum + i.
    opt.dropout_step = (step * static_cast<uint64_t>(cfg_.dp_size) + static_cast<uint64_t>(cfg_.dp_rank)) *
                           static_cast<uint64_t>(cfg_.grad_accum) +
                       static_cast<uint64_t>(i);
    const bool last = i == micro_batches - 1;
    const LossParts lp = model_.forward(weights_, mb, opt);
    if (last && reducer_) reducer_->begin(grads_.data(), grads_.size());
    model_.backward(weights_, weight_grads_, mb, opt, last && reducer_ ? bucket_ready : GradsReady{});
    out.loss += lp.loss / micro_batches;
    out.lm_loss += lp.lm_loss / micro_batches;
    out.nsp_loss += lp.nsp_loss / micro_batches;
    out.tokens += static_cast<long>(mb.batch) * mb.seq;
    out.targets += lp.targets;
  }
  out.batches = micro_batches;
  if (reducer_) {
    const auto t0 = std::chrono::steady_clock::now();
    reducer_->finish();
    out.dp_wait_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  out.requests = requests;
  agree_requests(out);
  average_metrics(out);
  return out;
}

StepMetrics Engine::train_step(int micro_batches, uint64_t step, float lr, uint32_t requests) {
  StepMetrics out = forward_backward(micro_batches, step, requests);
  if (!std::isfinite(out.loss)) {
    out.skipped = true;
    out.grad_norm = NAN;
    return out;
  }
  const OptimizerResult r = optimizer_.step(params_.data(), grads_.data(), lr, *tensor_parallel_);
  out.grad_norm = r.grad_norm;
  out.skipped = r.skipped;
  return out;
}

OptimizerResult Engine::apply_optimizer(float lr) {
  require_groups();
  use_threads();
  return optimizer_.step(params_.data(), grads_.data(), lr, *tensor_parallel_);
}

StepMetrics Engine::evaluate(int micro_batches) {
  require_groups();
  use_threads();
  StepMetrics out;
  ForwardOptions opt;  // training = false: no dropout, no gradient
  for (int i = 0; i < micro_batches; i++) {
    const LossParts lp = model_.forward(weights_, staged_[i].view(), opt);
    out.loss += lp.loss / micro_batches;
    out.lm_loss += lp.lm_loss / micro_batches;
    out.nsp_loss += lp.nsp_loss / micro_batches;
    out.tokens += static_cast<long>(staged_[i].batch) * staged_[i].seq;
    out.targets += lp.targets;
  }
  out.batches = micro_batches;
  average_metrics(out);
  return out;
}

LossParts Engine::forward_logits(std::vector<float>* logits, std::vector<int>* rows, std::vector<float>* nsp) {
  if (cfg_.model.tp_size > 1)
    throw Error("ERR_CONFIG", "logits are read at parallel.tensor = 1 (inference runs in one process)");
  use_threads();
  const MicroBatch mb = staged_[0].view();
  ForwardOptions opt;
  const LossParts lp = model_.forward(weights_, mb, opt);
  const long R = model_.logit_rows(mb);
  const long V = cfg_.model.vocab;
  logits->assign(model_.logits(), model_.logits() + R * V);
  rows->resize(R);
  for (long r = 0; r < R; r++) (*rows)[r] = model_.logit_position(r);
  if (cfg_.model.arch == Arch::Bert) nsp->assign(model_.nsp_logits(), model_.nsp_logits() + 2L * mb.batch);
  return lp;
}

}  // namespace paratrain
