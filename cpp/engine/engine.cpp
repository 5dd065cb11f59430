// engine.cpp — the training step: zero gradients, forward+backward per micro-batch (gradients
// accumulate), average gradients over the data-parallel group, one optimizer update.
#include "engine.h"

#include "../comm/host_staged.h"  // HostStagedCommunicator (the CUDA build over the libzmq rings)
#include "../common/allocation.h"  // allocating
#include <algorithm>  // std::fill
#include <chrono>     // steady_clock: data-parallel wait
#include <cmath>      // std::isfinite

#if defined(PARATRAIN_BACKEND_CUDA)
#include <cuda_runtime_api.h>  // cudaMemGetInfo
#else
#include <cblas.h>  // openblas_set_num_threads
#ifdef _OPENMP
#include <omp.h>  // omp_set_num_threads
#endif
#endif

namespace paratrain {

void DeviceBatch::allocate(int batch, int seq) {
  const size_t N = static_cast<size_t>(batch) * seq, B = static_cast<size_t>(batch);
  for (auto* b : {&tokens, &labels, &segments, &fixed_samples}) b->assign(N, 0);
  key_mask.assign(N, 0);
  for (auto* b : {&pair_labels, &class_labels, &start_positions, &end_positions}) b->assign(B, 0);
  targets.assign(B, 0.0f);
}

// Host array → its device twin; the device pointer, or null when the batch has no such array.
template <typename T, typename A>
static const T* upload_part(kernels::Buffer<T>& dst, const std::vector<T, A>& src, bool present) {
  if (!present) return nullptr;
  kernels::upload(dst.data(), src.data(), static_cast<long>(src.size()));
  return dst.data();
}

MicroBatch StagedBatch::view() {
  MicroBatch mb;
  mb.batch = batch;
  mb.seq = seq;
  mb.tokens = tokens.data();
  mb.labels = labels.data();
  mb.segments = has_segments ? segments.data() : nullptr;
  mb.key_mask = has_mask ? key_mask.data() : nullptr;
  mb.pair_labels = has_pair ? pair_labels.data() : nullptr;
  mb.fixed_samples = has_samples ? fixed_samples.data() : nullptr;
  mb.class_labels = has_class_labels ? class_labels.data() : nullptr;
  mb.targets = has_targets ? targets.data() : nullptr;
  mb.start_positions = has_spans ? start_positions.data() : nullptr;
  mb.end_positions = has_spans ? end_positions.data() : nullptr;
  mb.first_sample = first_sample;
  mb.host.labels = mb.labels;
  mb.host.key_mask = mb.key_mask;
  mb.host.fixed_samples = mb.fixed_samples;
  mb.host.class_labels = mb.class_labels;
  mb.host.start_positions = mb.start_positions;
  if constexpr (!kernels::kHostBuffers) {
    // The kernels read device memory: the same arrays, uploaded into the slot's device twin.
    mb.tokens = upload_part(device.tokens, tokens, true);
    mb.labels = upload_part(device.labels, labels, true);
    mb.segments = upload_part(device.segments, segments, has_segments);
    mb.key_mask = upload_part(device.key_mask, key_mask, has_mask);
    mb.pair_labels = upload_part(device.pair_labels, pair_labels, has_pair);
    mb.fixed_samples = upload_part(device.fixed_samples, fixed_samples, has_samples);
    mb.class_labels = upload_part(device.class_labels, class_labels, has_class_labels);
    mb.targets = upload_part(device.targets, targets, has_targets);
    mb.start_positions = upload_part(device.start_positions, start_positions, has_spans);
    mb.end_positions = upload_part(device.end_positions, end_positions, has_spans);
  }
  return mb;
}

static int default_predictions(const EngineConfig& c) {
  return c.max_predictions > 0 ? c.max_predictions : c.micro_batch * c.seq_len;
}

// Bytes the engine's kernel buffers hold now, and on the GPU what the device says is in use.
static int64_t held_bytes() { return kernels::buffer_bytes().load(); }
static int64_t device_used_bytes(int64_t* total) {
#if defined(PARATRAIN_BACKEND_CUDA)
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  *total = static_cast<int64_t>(total_b);
  return static_cast<int64_t>(total_b - free_b);
#else
  *total = -1;
  return -1;
#endif
}

Engine::Engine(const EngineConfig& cfg) : cfg_(cfg), model_(cfg.model), staged_(cfg.grad_accum) {
  if (cfg.micro_batch < 1 || cfg.seq_len < 1 || cfg.grad_accum < 1 || cfg.threads < 1)
    throw Error("ERR_CONFIG", "micro_batch, seq_len, grad_accum and threads must be at least 1");
  if (cfg.dp_size < 1 || cfg.dp_rank < 0 || cfg.dp_rank >= cfg.dp_size)
    throw Error("ERR_CONFIG", "data-parallel rank out of range");
  kernels::set_matmul_precision(cfg.precision);  // the CPU build refuses anything but fp32 here
  int64_t device_total = -1;
  const int64_t device_before = device_used_bytes(&device_total);
  const size_t total = static_cast<size_t>(model_.layout().total());
  int64_t before = held_bytes();
  const int64_t state_bytes = static_cast<int64_t>(total * sizeof(float));
  allocating("the parameters", state_bytes, [&] { params_.assign(total, 0.0f); });
  allocating("the gradients", state_bytes, [&] { grads_.assign(total, 0.0f); });
  optimizer_ = allocating("the optimizer's moments", 2 * state_bytes,
                          [&] { return make_optimizer(cfg.optimizer, model_.layout()); });
  memory_.params = memory_.grads = static_cast<int64_t>(total * sizeof(float));
  memory_.optimizer = held_bytes() - before - memory_.params - memory_.grads;
  before = held_bytes();
  model_.allocate(cfg.micro_batch, cfg.seq_len, model_.has_masked_lm() ? default_predictions(cfg) : 0, cfg.threads);
  if constexpr (!kernels::kHostBuffers)
    allocating("the device copies of the staged micro-batches", -1, [&] {
      for (StagedBatch& s : staged_) s.device.allocate(cfg.micro_batch, cfg.seq_len);
    });
  memory_.activations = held_bytes() - before;
  model_.bind(params_.data(), grads_.data());
  if (device_before >= 0) {
    memory_.device_used = device_used_bytes(&device_total) - device_before;
    memory_.device_total = device_total;
  }
}

void Engine::read_params(float* host) const {
  kernels::download(host, params_.data(), static_cast<long>(params_.size()));
}
void Engine::write_params(const float* host) { kernels::upload(params_.data(), host, static_cast<long>(params_.size())); }
void Engine::read_grads(float* host) const { kernels::download(host, grads_.data(), static_cast<long>(grads_.size())); }
void Engine::write_grads(const float* host) { kernels::upload(grads_.data(), host, static_cast<long>(grads_.size())); }
void Engine::read_moments(float* m, float* v) {
  kernels::download(m, optimizer_->m().data(), static_cast<long>(optimizer_->m().size()));
  kernels::download(v, optimizer_->v().data(), static_cast<long>(optimizer_->v().size()));
}
void Engine::write_moments(const float* m, const float* v) {
  kernels::upload(optimizer_->m().data(), m, static_cast<long>(optimizer_->m().size()));
  kernels::upload(optimizer_->v().data(), v, static_cast<long>(optimizer_->v().size()));
}

void Engine::set_communicators(std::unique_ptr<Communicator> tp, std::unique_ptr<Communicator> dp) {
  if (!tp || !dp || tp->size() != cfg_.model.tp_size || tp->rank() != cfg_.model.tp_rank ||
      dp->size() != cfg_.dp_size || dp->rank() != cfg_.dp_rank)
    throw Error("ERR_CONFIG", "the communicators do not match the engine's tensor/data-parallel ranks");
  reducer_.reset();
  if constexpr (!kernels::kHostBuffers) {
    // The rings read host memory; the model's collectives act on device memory (NCCL reads it).
    if (!tp->reads_device_memory()) tp = std::make_unique<HostStagedCommunicator>(std::move(tp));
    if (!dp->reads_device_memory()) dp = std::make_unique<HostStagedCommunicator>(std::move(dp));
  }
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

StepMetrics Engine::empty_metrics() const {
  StepMetrics m;
  m.losses.assign(model_.loss_names().size(), 0.0);
  m.counts.assign(model_.loss_names().size(), 0);
  m.metrics.assign(2 * model_.metric_names().size(), 0.0);  // numerators and denominators until finish_metrics
  return m;
}

void Engine::add_forward(StepMetrics& m, const ForwardResult& r, int micro_batches) const {
  m.loss += r.loss / micro_batches;
  for (size_t h = 0; h < r.losses.size(); h++) {
    m.losses[h] += r.losses[h] / micro_batches;
    m.counts[h] += r.counts[h];
  }
  for (size_t i = 0; i < r.metrics.size(); i++) m.metrics[i] += r.metrics[i];
}

void Engine::finish_metrics(StepMetrics& m) {
  const size_t H = m.losses.size(), K = m.metrics.size();
  if (reducer_) {
    // Sums over replicas of [loss, losses…] × batches, batches, tokens, counts…, metric terms…,
    // save, stop; the means were per replica over its micro-batches.
    std::vector<double>& v = reduce_scratch_;
    v.assign(1 + H + 2 + H + K + 2, 0.0);
    double* loss_sums = v.data();
    double* sums = v.data() + 1 + H;
    loss_sums[0] = m.loss * m.batches;
    for (size_t h = 0; h < H; h++) loss_sums[1 + h] = m.losses[h] * m.batches;
    sums[0] = static_cast<double>(m.batches);
    sums[1] = static_cast<double>(m.tokens);
    for (size_t h = 0; h < H; h++) sums[2 + h] = static_cast<double>(m.counts[h]);
    for (size_t k = 0; k < K; k++) sums[2 + H + k] = m.metrics[k];
    double* flags = sums + 2 + H + K;
    flags[0] = (m.requests & kRequestSave) ? 1.0 : 0.0;
    flags[1] = (m.requests & kRequestStop) ? 1.0 : 0.0;
    reducer_->all_reduce_now(v.data(), v.size());
    m.requests = (flags[0] > 0 ? kRequestSave : 0u) | (flags[1] > 0 ? kRequestStop : 0u);
    m.batches = static_cast<long>(sums[0]);
    m.tokens = static_cast<long>(sums[1]);
    for (size_t h = 0; h < H; h++) m.counts[h] = static_cast<long>(sums[2 + h]);
    for (size_t k = 0; k < K; k++) m.metrics[k] = sums[2 + H + k];
    const double inv = m.batches > 0 ? 1.0 / static_cast<double>(m.batches) : 0.0;
    m.loss = loss_sums[0] * inv;
    for (size_t h = 0; h < H; h++) m.losses[h] = loss_sums[1 + h] * inv;
  }
  // Metrics: (numerator, denominator) pairs → ratios.
  for (size_t k = 0; 2 * k < K; k++) {
    const double den = m.metrics[2 * k + 1];
    m.metrics[k] = den > 0 ? m.metrics[2 * k] / den : 0.0;
  }
  m.metrics.resize(K / 2);
}

void Engine::use_threads() const {
  kernels::set_matmul_precision(cfg_.precision);  // per thread: a step may run on any pool thread
#if !defined(PARATRAIN_BACKEND_CUDA)
  // Both OpenMP (our loops) and OpenBLAS (its OpenMP build) use the same team size, set on the
  // thread that runs the step, so the cores are shared without oversubscription.
#ifdef _OPENMP
  omp_set_num_threads(cfg_.threads);
#endif
  openblas_set_num_threads(cfg_.threads);
#endif
}

void Engine::init_params(uint64_t seed) {
  use_threads();
  if constexpr (kernels::kHostBuffers) {
    paratrain::init_params(model_.layout(), seed, params_.data());
  } else {  // drawn on the host (the same values as the CPU's), then uploaded
    std::vector<float> host = allocating("a host copy of the parameters",
                                         static_cast<int64_t>(params_.size() * sizeof(float)),
                                         [&] { return std::vector<float>(params_.size()); });
    paratrain::init_params(model_.layout(), seed, host.data());
    write_params(host.data());
  }
  const long total = static_cast<long>(params_.size());
  kernels::fill(grads_.data(), total, 0.0f);
  kernels::fill(optimizer_->m().data(), total, 0.0f);
  kernels::fill(optimizer_->v().data(), total, 0.0f);
  optimizer_->set_step_count(0);
}

StagedBatch& Engine::stage(int slot) {
  if (slot < 0 || slot >= cfg_.grad_accum)
    throw Error("ERR_BATCH", "at most " + std::to_string(cfg_.grad_accum) + " micro-batches per step (train.grad_accum)");
  return staged_[slot];
}

static bool spec_has(const ModelSpec& spec, HeadKind kind) {
  for (const HeadSpec& h : spec.heads)
    if (h.kind == kind) return true;
  return false;
}

void Engine::check_staged(int slot) {
  StagedBatch& s = staged_[slot];
  const ModelSpec& spec = cfg_.model;
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
  const int V = spec.vocab;
  // Labels are token ids, or with a token-classification head its class ids.
  int label_limit = V;
  std::string label_kind = "a token id";
  for (const HeadSpec& h : spec.heads)
    if (h.kind == HeadKind::TokenClassification) {
      label_limit = h.classes;
      label_kind = "a class id of head '" + h.loss + "' [0, " + std::to_string(h.classes) + ")";
    }
  long targets = 0;
  for (size_t i = 0; i < N; i++) {
    if (s.tokens[i] < 0 || s.tokens[i] >= V)
      throw Error("ERR_BATCH", where + "token id " + std::to_string(s.tokens[i]) + " at " + std::to_string(i) +
                                   " is outside the vocabulary [0, " + std::to_string(V) + ")");
    if (s.labels[i] != kIgnoreIndex && (s.labels[i] < 0 || s.labels[i] >= label_limit))
      throw Error("ERR_BATCH", where + "label " + std::to_string(s.labels[i]) + " is neither -100 nor " + label_kind);
    targets += s.labels[i] != kIgnoreIndex;
  }
  const int types = spec.embeddings.type_vocab;
  if (s.has_segments) {
    if (s.segments.size() != N) throw Error("ERR_BATCH", where + "segments must hold batch·seq entries");
    for (size_t i = 0; i < N; i++)
      if (s.segments[i] < 0 || s.segments[i] >= (types > 0 ? types : 1))
        throw Error("ERR_BATCH", where + "segment id " + std::to_string(s.segments[i]) + " is outside [0, " +
                                     std::to_string(types > 0 ? types : 1) + ") (the model has " +
                                     std::to_string(types) + " segment embeddings)");
  } else if (types > 0) {
    s.segments.assign(N, 0);  // one segment
    s.has_segments = true;
  }
  if (s.has_mask && s.key_mask.size() != N)
    throw Error("ERR_BATCH", where + "attentionMask must hold batch·seq entries");
  bool pooled = false;
  for (const StackSpec& st : spec.stacks) pooled = pooled || st.pooler;
  if (s.has_mask && pooled)
    for (int b = 0; b < s.batch; b++)
      if (!s.key_mask[static_cast<size_t>(b) * s.seq])
        throw Error("ERR_BATCH", where + "the first token of every sequence must be unmasked ([CLS])");
  if (spec_has(spec, HeadKind::MaskedLm) && targets > default_predictions(cfg_))
    throw Error("ERR_BATCH", where + std::to_string(targets) + " masked positions exceed the limit of " +
                                 std::to_string(default_predictions(cfg_)) + " (data.max_predictions)");
  if (s.has_pair) {
    if (!spec_has(spec, HeadKind::SentencePair))
      throw Error("ERR_BATCH", where + "pairLabels were given but the model has no sentence-pair head");
    if (s.pair_labels.size() != static_cast<size_t>(s.batch))
      throw Error("ERR_BATCH", where + "pairLabels must hold one label per sequence");
    for (int v : s.pair_labels)
      if (v != 0 && v != 1 && v != kIgnoreIndex) throw Error("ERR_BATCH", where + "pair labels must be 0, 1 or -100");
  }
  const HeadSpec* sequence_head = nullptr;
  for (const HeadSpec& h : spec.heads)
    if (h.kind == HeadKind::SequenceClassification) sequence_head = &h;
  if (s.has_class_labels) {
    if (!sequence_head || sequence_head->classes < 2)
      throw Error("ERR_BATCH", where + "classLabels were given but the model has no sequence-classification head "
                                       "with 2 or more classes");
    if (s.class_labels.size() != static_cast<size_t>(s.batch))
      throw Error("ERR_BATCH", where + "classLabels must hold one label per sequence");
    for (int v : s.class_labels)
      if (v != kIgnoreIndex && (v < 0 || v >= sequence_head->classes))
        throw Error("ERR_BATCH", where + "class label " + std::to_string(v) + " is outside [0, " +
                                     std::to_string(sequence_head->classes) + ") and not -100");
  }
  if (s.has_targets) {
    if (!sequence_head || sequence_head->classes != 1)
      throw Error("ERR_BATCH", where + "regression targets were given but the model has no 1-output regression head");
    if (s.targets.size() != static_cast<size_t>(s.batch))
      throw Error("ERR_BATCH", where + "targets must hold one value per sequence");
    for (float v : s.targets)
      if (!std::isfinite(v)) throw Error("ERR_BATCH", where + "a regression target is not a finite number");
  }
  if (s.has_spans) {
    if (!spec_has(spec, HeadKind::QuestionAnswering))
      throw Error("ERR_BATCH", where + "answer positions were given but the model has no question-answering head");
    if (s.start_positions.size() != static_cast<size_t>(s.batch) || s.end_positions.size() != s.start_positions.size())
      throw Error("ERR_BATCH", where + "startPositions and endPositions must hold one position per sequence");
    for (size_t b = 0; b < s.start_positions.size(); b++) {
      const int a = s.start_positions[b], e = s.end_positions[b];
      if ((a == kIgnoreIndex) != (e == kIgnoreIndex) || (a != kIgnoreIndex && (a < 0 || e < a || e >= s.seq)))
        throw Error("ERR_BATCH", where + "answer span [" + std::to_string(a) + ", " + std::to_string(e) +
                                     "] of sequence " + std::to_string(b) + " is not inside [0, " +
                                     std::to_string(s.seq) + ") with start <= end");
    }
  }
  if (s.has_samples) {
    bool sampling = false;
    for (const HeadSpec& h : spec.heads) sampling = sampling || h.sample;
    if (!sampling) throw Error("ERR_BATCH", where + "samples were given but no head of the model samples");
    if (s.fixed_samples.size() != N) throw Error("ERR_BATCH", where + "samples must hold batch·seq entries");
    for (int v : s.fixed_samples)
      if (v < 0 || v >= V) throw Error("ERR_BATCH", where + "sample " + std::to_string(v) + " is not a token id");
  }
}

StepMetrics Engine::forward_backward(int micro_batches, uint64_t step, uint32_t requests, float loss_scale) {
  require_groups();
  use_threads();
  kernels::fill(grads_.data(), static_cast<long>(grads_.size()), 0.0f);
  StepMetrics out = empty_metrics();
  ForwardOptions opt;
  opt.training = true;
  // Scaling by a power of two is exact, so the unscaled gradients are recovered bit for bit.
  opt.grad_scale = 1.0f / static_cast<float>(micro_batches) * loss_scale;
  opt.dropout_seed = cfg_.seed;
  opt.sample_seed = cfg_.seed;
  // On the last micro-batch, each group of gradients is averaged over the data-parallel replicas
  // as soon as backward has finalised it, while backward goes on.
  const GradsReady bucket_ready = [this](size_t offset) { reducer_->ready_from(offset); };
  for (int i = 0; i < micro_batches; i++) {
    const MicroBatch mb = staged_[i].view();
    // Dropout streams by global micro-batch index: replica r's micro-batch i is the single-process
    // run's micro-batch r·accum + i.
    opt.dropout_step = (step * static_cast<uint64_t>(cfg_.dp_size) + static_cast<uint64_t>(cfg_.dp_rank)) *
                           static_cast<uint64_t>(cfg_.grad_accum) +
                       static_cast<uint64_t>(i);
    const bool last = i == micro_batches - 1;
    const ForwardResult& r = model_.forward(mb, opt);
    if (last && reducer_) reducer_->begin(grads_.data(), grads_.size());
    model_.backward(mb, opt, last && reducer_ ? bucket_ready : GradsReady{});
    add_forward(out, r, micro_batches);
    out.tokens += static_cast<long>(mb.batch) * mb.seq;
  }
  out.batches = micro_batches;
  if (reducer_) {
    const auto t0 = std::chrono::steady_clock::now();
    reducer_->finish();
    out.dp_wait_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  out.requests = requests;
  agree_requests(out);
  finish_metrics(out);
  return out;
}

StepMetrics Engine::train_step(int micro_batches, uint64_t step, float lr, uint32_t requests, float loss_scale) {
  StepMetrics out = forward_backward(micro_batches, step, requests, loss_scale);
  if (!std::isfinite(out.loss)) {
    out.skipped = true;
    out.grad_norm = NAN;
    return out;
  }
  const OptimizerResult r = optimizer_->step(params_.data(), grads_.data(), lr, *tensor_parallel_, 1.0f / loss_scale);
  out.grad_norm = r.grad_norm;
  out.skipped = r.skipped;
  return out;
}

OptimizerResult Engine::apply_optimizer(float lr) {
  require_groups();
  use_threads();
  return optimizer_->step(params_.data(), grads_.data(), lr, *tensor_parallel_, 1.0f);
}

StepMetrics Engine::evaluate(int micro_batches) {
  require_groups();
  use_threads();
  StepMetrics out = empty_metrics();
  ForwardOptions opt;  // training = false: no dropout, no gradient
  opt.sample_seed = cfg_.seed;
  for (int i = 0; i < micro_batches; i++) {
    add_forward(out, model_.forward(staged_[i].view(), opt), micro_batches);
    out.tokens += static_cast<long>(staged_[i].batch) * staged_[i].seq;
  }
  out.batches = micro_batches;
  finish_metrics(out);
  return out;
}

StepMetrics Engine::forward_logits(std::vector<float>* logits, std::vector<int>* rows,
                                   std::vector<float>* class_logits, std::vector<float>* position_logits,
                                   std::vector<float>* hidden) {
  // Vocabulary logits are split over a tensor-parallel group; the task heads' are whole on every rank.
  if (cfg_.model.tp_size > 1 && (model_.prediction_head() != nullptr || hidden != nullptr))
    throw Error("ERR_CONFIG",
                "vocabulary logits and hidden states are read at parallel.tensor = 1 (inference runs in one process)");
  use_threads();
  const MicroBatch mb = staged_[0].view();
  ForwardOptions opt;
  opt.sample_seed = cfg_.seed;
  StepMetrics out = empty_metrics();
  add_forward(out, model_.forward(mb, opt), 1);
  out.batches = 1;
  out.tokens = static_cast<long>(mb.batch) * mb.seq;
  finish_metrics(out);
  // Kernel memory → the caller's host vectors.
  const auto take = [](std::vector<float>* dst, const float* src, long n) {
    dst->resize(static_cast<size_t>(n));
    kernels::download(dst->data(), src, n);
  };
  logits->clear();
  rows->clear();
  class_logits->clear();
  position_logits->clear();
  const long N = static_cast<long>(mb.batch) * mb.seq;
  if (const Head* head = model_.prediction_head()) {
    const long R = head->logit_rows(), V = cfg_.model.vocab;
    take(logits, head->logits(), R * V);
    rows->resize(static_cast<size_t>(R));
    for (long r = 0; r < R; r++) (*rows)[static_cast<size_t>(r)] = head->logit_position(r);
  }
  if (const Head* head = model_.class_head())
    take(class_logits, head->class_logits(), static_cast<long>(head->classes()) * mb.batch);
  if (const Head* head = model_.position_head())
    take(position_logits, head->position_logits(), static_cast<long>(head->position_classes()) * N);
  if (hidden != nullptr) take(hidden, model_.top_hidden(), static_cast<long>(model_.top_hidden_size()) * N);
  return out;
}

}  // namespace paratrain
