// addon.cpp — the N-API surface of the engine (typed once, in src/engine/native.ts).
// Slow calls (steps, evaluation, logits) run on the libuv pool as AsyncWorkers and resolve a
// Promise; C++ exceptions become JS Errors with a `code`.
#include <napi.h>

#include <atomic>
#include <cmath>  // std::frexp
#include <functional>
#include <memory>
#include <new>  // std::bad_alloc
#include <string>

#if defined(PARATRAIN_BACKEND_CUDA)
#include <cuda_runtime_api.h>  // cudaGetDeviceCount, cudaGetDeviceProperties
#include <cstdlib>             // std::getenv
#else
#include <cblas.h>  // openblas_get_corename
#endif

#include "../comm/zmq_ring.h"  // ZmqRingCommunicator
#if defined(PARATRAIN_BACKEND_CUDA)
#include "../comm/nccl_communicator.h"  // NcclCommunicator (NCCL bound at run time)
#endif
#include "../engine/engine.h"    // Engine, EngineConfig

namespace paratrain {
namespace {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// The code a C++ exception carries to JS: paratrain::Error's own; ERR_OUT_OF_MEMORY for a
// std::bad_alloc that no allocating() named (cpp/common/allocation.h); ERR_NATIVE otherwise.
std::string code_of(const std::exception& e) {
  if (const auto* coded = dynamic_cast<const Error*>(&e)) return coded->code();
  if (dynamic_cast<const std::bad_alloc*>(&e)) return "ERR_OUT_OF_MEMORY";
  return "ERR_NATIVE";
}
std::string message_of(const std::exception& e) {
  if (dynamic_cast<const Error*>(&e) == nullptr && dynamic_cast<const std::bad_alloc*>(&e) != nullptr)
    return std::string("out of memory (") + e.what() + "): the machine, or the process's memory limit, cannot hold "
           "what the engine asked for";
  return e.what();
}

// Runs `body` and converts paratrain::Error / std::exception into a thrown JS Error with a code.
template <typename F>
auto guarded(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    throw make_error(env, code_of(e), message_of(e));
  }
}

// Engine options come from src/engine/engine.ts (engineOptions, built from a validated config). A
// field that is missing or has the wrong type is a bug there: it fails with ERR_CONFIG naming the
// field, never replaced by a default. The few fields the TypeScript type marks optional (the
// parallel ranks and sizes, the bucket) keep EngineConfig's own defaults when absent.
using Is = bool (Napi::Value::*)() const;
Napi::Value get_field(const Napi::Object& o, const char* key, const std::string& where, Is is, const char* type) {
  Napi::Value v = o.Get(key);
  if (!(v.*is)()) throw Error("ERR_CONFIG", where + "." + key + " must be " + type);
  return v;
}
int get_int(const Napi::Object& o, const char* key, const std::string& where) {
  return get_field(o, key, where, &Napi::Value::IsNumber, "a number").As<Napi::Number>().Int32Value();
}
double get_num(const Napi::Object& o, const char* key, const std::string& where) {
  return get_field(o, key, where, &Napi::Value::IsNumber, "a number").As<Napi::Number>().DoubleValue();
}
std::string get_str(const Napi::Object& o, const char* key, const std::string& where) {
  return get_field(o, key, where, &Napi::Value::IsString, "a string").As<Napi::String>().Utf8Value();
}
bool get_bool(const Napi::Object& o, const char* key, const std::string& where) {
  return get_field(o, key, where, &Napi::Value::IsBoolean, "a boolean").As<Napi::Boolean>().Value();
}
// An optional number: absent (undefined) leaves `into` as it is.
template <typename T>
void read_optional_num(const Napi::Object& o, const char* key, const std::string& where, T& into) {
  if (o.Get(key).IsUndefined()) return;
  into = static_cast<T>(get_num(o, key, where));
}
// Arguments of the other calls (data-plane options, batches, step options): a missing field takes
// `fallback`; their callers check what matters (batch shapes, ranks) where it is used.
int get_int_or(const Napi::Object& o, const char* key, int fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
}
double get_num_or(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}
// A step's loss scale: a power of two from 1 to 2^127 (exact scaling and unscaling in fp32).
float loss_scale_arg(double s) {
  int exponent = 0;
  if (!(s >= 1 && s <= 0x1p127) || std::frexp(s, &exponent) != 0.5)
    throw Error("ERR_ARGUMENT", "lossScale must be a power of two from 1 to 2^127, got " + std::to_string(s));
  return static_cast<float>(s);
}
std::string get_str_or(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : fallback;
}
Napi::Object get_object(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) throw Error("ERR_CONFIG", where + "." + key + " must be an object");
  return v.As<Napi::Object>();
}
Napi::Array get_array(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw Error("ERR_CONFIG", where + "." + key + " must be an array");
  return v.As<Napi::Array>();
}

// The model spec (src/engine/spec.ts builds it from the config; ModelSpec::validate() checks it).
ModelSpec parse_spec(const Napi::Object& o) {
  const std::string w = "spec";
  ModelSpec m;
  m.vocab = get_int(o, "vocabSize", w);
  m.max_positions = get_int(o, "maxPositions", w);
  m.layernorm_eps = static_cast<float>(get_num(o, "layernormEps", w));
  const std::string gelu = get_str(o, "gelu", w);
  if (gelu != "erf" && gelu != "tanh") throw Error("ERR_CONFIG", "spec.gelu must be 'erf' or 'tanh'");
  m.gelu = gelu == "erf" ? GeluForm::Erf : GeluForm::Tanh;
  m.hidden_dropout = static_cast<float>(get_num(o, "hiddenDropout", w));
  m.attention_dropout = static_cast<float>(get_num(o, "attentionDropout", w));
  m.init_std = get_num(o, "initStd", w);
  const Napi::Object e = get_object(o, "embeddings", w);
  m.embeddings.dim = get_int(e, "dim", "spec.embeddings");
  m.embeddings.type_vocab = get_int(e, "typeVocab", "spec.embeddings");
  m.embeddings.norm = get_bool(e, "norm", "spec.embeddings");
  const Napi::Array stacks = get_array(o, "stacks", w);
  for (uint32_t i = 0; i < stacks.Length(); i++) {
    const std::string ws = "spec.stacks[" + std::to_string(i) + "]";
    Napi::Value v = stacks.Get(i);
    if (!v.IsObject()) throw Error("ERR_CONFIG", ws + " must be an object");
    const Napi::Object so = v.As<Napi::Object>();
    StackSpec st;
    st.prefix = get_str(so, "prefix", ws);
    st.layers = get_int(so, "layers", ws);
    st.groups = get_int(so, "groups", ws);
    st.hidden = get_int(so, "hidden", ws);
    st.heads = get_int(so, "heads", ws);
    st.ffn = get_int(so, "ffn", ws);
    const std::string norm = get_str(so, "norm", ws);
    if (norm != "post" && norm != "pre") throw Error("ERR_CONFIG", "spec.stacks[].norm must be 'post' or 'pre'");
    st.norm = norm == "post" ? NormPlacement::Post : NormPlacement::Pre;
    st.causal = get_bool(so, "causal", ws);
    st.projection = get_bool(so, "projection", ws);
    st.final_norm = get_bool(so, "finalNorm", ws);
    st.pooler = get_bool(so, "pooler", ws);
    st.scaled_residual_init = get_bool(so, "scaledResidualInit", ws);
    st.input_from = get_int(so, "inputFrom", ws);
    m.stacks.push_back(st);
  }
  const Napi::Array heads = get_array(o, "heads", w);
  for (uint32_t i = 0; i < heads.Length(); i++) {
    const std::string wh = "spec.heads[" + std::to_string(i) + "]";
    Napi::Value v = heads.Get(i);
    if (!v.IsObject()) throw Error("ERR_CONFIG", wh + " must be an object");
    const Napi::Object ho = v.As<Napi::Object>();
    HeadSpec h;
    h.kind = head_kind_named(get_str(ho, "kind", wh));
    h.stack = get_int(ho, "stack", wh);
    h.prefix = get_str(ho, "prefix", wh);
    h.loss = get_str(ho, "loss", wh);
    h.weight = static_cast<float>(get_num(ho, "weight", wh));
    h.sample = get_bool(ho, "sample", wh);
    // Fine-tuning heads only (absent on the pretraining heads).
    read_optional_num(ho, "classes", wh, h.classes);
    if (!ho.Get("dense").IsUndefined()) h.dense = get_bool(ho, "dense", wh);
    if (!ho.Get("denseActivation").IsUndefined()) {
      const std::string act = get_str(ho, "denseActivation", wh);
      if (act != "tanh" && act != "gelu") throw Error("ERR_CONFIG", wh + ".denseActivation must be 'tanh' or 'gelu'");
      h.dense_gelu = act == "gelu";
    }
    m.heads.push_back(h);
  }
  return m;
}

EngineConfig parse_config(const Napi::Object& o) {
  const std::string w = "engine options";
  EngineConfig c;
  c.model = parse_spec(get_object(o, "spec", w));
  read_optional_num(o, "tensorParallelRank", w, c.model.tp_rank);
  read_optional_num(o, "tensorParallelSize", w, c.model.tp_size);
  c.micro_batch = get_int(o, "microBatch", w);
  c.seq_len = get_int(o, "seqLen", w);
  c.grad_accum = get_int(o, "gradAccum", w);
  c.max_predictions = get_int(o, "maxPredictions", w);
  c.threads = get_int(o, "threads", w);
  c.seed = static_cast<uint64_t>(get_num(o, "seed", w));
  const std::string precision = get_str_or(o, "precision", "fp32");
  if (precision != "fp32" && precision != "bf16" && precision != "fp16")
    throw Error("ERR_CONFIG", "precision must be 'fp32', 'bf16' or 'fp16', got '" + precision + "'");
  c.precision = precision == "bf16"   ? MatmulPrecision::Bf16
                : precision == "fp16" ? MatmulPrecision::Fp16
                                      : MatmulPrecision::Fp32;
  read_optional_num(o, "dataParallelRank", w, c.dp_rank);
  read_optional_num(o, "dataParallelSize", w, c.dp_size);
  double bucket = 0;
  read_optional_num(o, "bucketElems", w, bucket);
  if (bucket > 0) c.bucket_elems = static_cast<size_t>(bucket);
  const Napi::Object opt = get_object(o, "optimizer", w);
  const std::string wo = "engine options.optimizer";
  const std::string name = get_str(opt, "name", wo);
  if (name != "lamb" && name != "adamw") throw Error("ERR_CONFIG", "optimizer.name must be 'lamb' or 'adamw'");
  c.optimizer.kind = name == "lamb" ? OptimizerKind::Lamb : OptimizerKind::AdamW;
  c.optimizer.beta1 = static_cast<float>(get_num(opt, "beta1", wo));
  c.optimizer.beta2 = static_cast<float>(get_num(opt, "beta2", wo));
  c.optimizer.eps = static_cast<float>(get_num(opt, "eps", wo));
  c.optimizer.weight_decay = static_cast<float>(get_num(opt, "weightDecay", wo));
  const std::string variant = get_str(opt, "variant", wo);
  if (variant != "nvlamb" && variant != "apex")
    throw Error("ERR_CONFIG", "optimizer.variant must be 'nvlamb' or 'apex'");
  c.optimizer.apex = variant == "apex";
  c.optimizer.max_grad_norm = static_cast<float>(get_num(opt, "maxGradNorm", wo));
  c.model.validate();
  return c;
}

template <typename Typed>
Typed typed_array(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Error("ERR_ARGUMENT", std::string(what) + " must be a typed array");
  return v.As<Typed>();
}

template <typename Elem, typename Typed>
void copy_into(std::vector<Elem>& dst, const Napi::Value& v, const char* what, napi_typedarray_type type) {
  Typed arr = typed_array<Typed>(v, what);
  if (arr.TypedArrayType() != type) throw Error("ERR_ARGUMENT", std::string(what) + " has the wrong element type");
  dst.assign(arr.Data(), arr.Data() + arr.ElementLength());
}

// {loss, losses: {name: value}, counts: {name: targets}, metrics: {name: value}, gradNorm, ...}
Napi::Object metrics_object(Napi::Env env, const StepMetrics& m, const Model& model) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", m.loss);
  Napi::Object losses = Napi::Object::New(env), counts = Napi::Object::New(env), metrics = Napi::Object::New(env);
  for (size_t h = 0; h < m.losses.size(); h++) {
    losses.Set(model.loss_names()[h], m.losses[h]);
    counts.Set(model.loss_names()[h], static_cast<double>(m.counts[h]));
  }
  for (size_t k = 0; k < m.metrics.size(); k++) metrics.Set(model.metric_names()[k], m.metrics[k]);
  o.Set("losses", losses);
  o.Set("counts", counts);
  o.Set("metrics", metrics);
  o.Set("gradNorm", m.grad_norm);
  o.Set("tokens", static_cast<double>(m.tokens));
  o.Set("batches", static_cast<double>(m.batches));
  o.Set("dpWaitMs", m.dp_wait_ms);
  o.Set("skipped", m.skipped);
  o.Set("requests", static_cast<double>(m.requests));
  return o;
}

// A Promise-returning job on the libuv pool: runs `body` off the JS thread, then resolves with
// `result` (on the JS thread) or rejects with the C++ error's code. `settle` runs on the JS thread
// either way (an engine's job clears its busy flag there).
class PoolJob : public Napi::AsyncWorker {
 public:
  using Body = std::function<void()>;
  using Result = std::function<Napi::Value(Napi::Env)>;
  PoolJob(Napi::Env env, Napi::Object owner, Body body, Result result, std::function<void()> settle = {})
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), body_(std::move(body)),
        result_(std::move(result)), settle_(std::move(settle)) {
    owner_ = Napi::Persistent(owner);  // keep the JS object alive while the job runs
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      kernels::bind_thread();  // the CUDA build: this pool thread runs kernels on the engine's device
      body_();
    } catch (const std::exception& e) {
      code_ = code_of(e);
      SetError(message_of(e));
    }
  }
  void OnOK() override {
    if (settle_) settle_();
    deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    if (settle_) settle_();
    deferred_.Reject(make_error(Env(), code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference owner_;
  Body body_;
  Result result_;
  std::function<void()> settle_;
  std::string code_ = "ERR_NATIVE";
};

// Queues a job and returns its Promise.
Napi::Value queue_job(PoolJob* job) {
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

// The worker's two data-plane rings (tensor-parallel and data-parallel group). Created before
// rendezvous so their endpoints can be registered; connected once the coordinator has assigned the
// groups; then handed to an Engine, which owns them from there on.
class DataPlaneWrap : public Napi::ObjectWrap<DataPlaneWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "DataPlane",
                                   {InstanceMethod("endpoints", &DataPlaneWrap::Endpoints),
                                    InstanceMethod("connect", &DataPlaneWrap::Connect)});
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  // new DataPlane({ ipcDir, hostAddr, timeoutMs, localRank, curve?: {serverPublic, serverSecret, clientPublic, clientSecret} })
  explicit DataPlaneWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataPlaneWrap>(info) {
    guarded(info.Env(), [&] {
      if (info.Length() < 1 || !info[0].IsObject())
        throw Error("ERR_ARGUMENT", "new DataPlane(options) needs {ipcDir, hostAddr, timeoutMs}");
      Napi::Object o = info[0].As<Napi::Object>();
      const std::string ipc_dir = get_str_or(o, "ipcDir", "");
      const std::string host = get_str_or(o, "hostAddr", "");
      const int timeout_ms = get_int_or(o, "timeoutMs", 120000);
      const std::string tag = ipc_dir.empty() ? "" : ipc_dir + "/" + std::to_string(get_int_or(o, "localRank", 0));
      RingCurveKeys curve;
      Napi::Value keys = o.Get("curve");
      if (keys.IsObject()) {
        Napi::Object k = keys.As<Napi::Object>();
        curve = {get_str_or(k, "serverPublic", ""), get_str_or(k, "serverSecret", ""), get_str_or(k, "clientPublic", ""),
                 get_str_or(k, "clientSecret", "")};
        for (const std::string* key : {&curve.server_public, &curve.server_secret, &curve.client_public,
                                       &curve.client_secret})
          if (key->size() != 40)
            throw Error("ERR_ARGUMENT", "DataPlane curve keys must be 40 characters of Z85 each");
      }
      // A tensor-parallel group never leaves its node, so with an ipc directory its ring needs no TCP
      // listener (one would only be a port for strangers to try).
      tp_ = std::make_unique<ZmqRingCommunicator>(tag.empty() ? "" : tag + "-tp", tag.empty() ? host : "", timeout_ms,
                                                  "tensor-parallel", curve);
      dp_ = std::make_unique<ZmqRingCommunicator>(tag.empty() ? "" : tag + "-dp", host, timeout_ms, "data-parallel",
                                                  curve);
      return 0;
    });
  }

  // Moves the connected rings out (Engine takes them); throws if not connected or already taken.
  std::pair<std::unique_ptr<Communicator>, std::unique_ptr<Communicator>> take() {
    if (!tp_ || !dp_) throw Error("ERR_ARGUMENT", "this DataPlane was already given to an engine");
    if (!connected_) throw Error("ERR_ARGUMENT", "connect() the DataPlane before creating the engine with it");
    if (busy_) throw Error("ERR_ENGINE_BUSY", "the DataPlane is still connecting");
    return {std::move(tp_), std::move(dp_)};
  }

 private:
  static Napi::Object endpoint_object(Napi::Env env, const RingEndpoints& e) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("ipc", e.ipc);
    o.Set("tcp", e.tcp);
    return o;
  }

  Napi::Value Endpoints(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!tp_ || !dp_) throw make_error(env, "ERR_ARGUMENT", "this DataPlane was already given to an engine");
    Napi::Object o = Napi::Object::New(env);
    o.Set("tp", endpoint_object(env, tp_->endpoints()));
    o.Set("dp", endpoint_object(env, dp_->endpoints()));
    return o;
  }

  // connect({ tp: {rank, size, next}, dp: {rank, size, next} }) → Promise; handshakes both rings.
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct Ring {
      int rank, size;
      std::string next;
    };
    auto ring = [&](const Napi::Object& o, const char* key) {
      Napi::Value v = o.Get(key);
      if (!v.IsObject()) throw Error("ERR_ARGUMENT", std::string("connect() needs ") + key + ": {rank, size, next}");
      Napi::Object r = v.As<Napi::Object>();
      return Ring{get_int_or(r, "rank", -1), get_int_or(r, "size", 0), get_str_or(r, "next", "")};
    };
    const auto rings = guarded(env, [&] {
      if (!tp_ || !dp_ || busy_ || connected_) throw Error("ERR_ARGUMENT", "this DataPlane cannot connect again");
      if (info.Length() < 1 || !info[0].IsObject()) throw Error("ERR_ARGUMENT", "connect() needs {tp, dp}");
      Napi::Object o = info[0].As<Napi::Object>();
      return std::make_pair(ring(o, "tp"), ring(o, "dp"));
    });
    busy_ = true;
    ZmqRingCommunicator* tp = tp_.get();
    ZmqRingCommunicator* dp = dp_.get();
    auto body = [this, tp, dp, rings] {
      tp->connect(rings.first.rank, rings.first.size, rings.first.next);
      dp->connect(rings.second.rank, rings.second.size, rings.second.next);
      connected_ = true;
    };
    return queue_job(new PoolJob(env, info.This().As<Napi::Object>(), body, {}, [this] { busy_ = false; }));
  }

  std::unique_ptr<ZmqRingCommunicator> tp_, dp_;
  std::atomic<bool> busy_{false}, connected_{false};
};

#if defined(PARATRAIN_BACKEND_CUDA)
// The worker's two groups over NCCL (parallel.comm nccl): the same role as DataPlaneWrap, with the
// groups' unique ids from their first members instead of ring endpoints. connect() makes both
// communicators on a pool thread (every member of a group connects at about the same time; a member
// that never comes fails it with ERR_COLLECTIVE_TIMEOUT within timeoutMs).
class NcclPlaneWrap : public Napi::ObjectWrap<NcclPlaneWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NcclPlane",
                                   {InstanceMethod("connect", &NcclPlaneWrap::Connect),
                                    InstanceAccessor("kind", &NcclPlaneWrap::Kind, nullptr)});
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  struct Group {
    int rank = -1, size = 0;
    std::string id;
  };

  // new NcclPlane({ tp: {rank, size, id}, dp: {rank, size, id}, timeoutMs })
  explicit NcclPlaneWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NcclPlaneWrap>(info) {
    guarded(info.Env(), [&] {
      if (info.Length() < 1 || !info[0].IsObject())
        throw Error("ERR_ARGUMENT", "new NcclPlane(options) needs {tp, dp, timeoutMs}");
      Napi::Object o = info[0].As<Napi::Object>();
      tp_group_ = group(o, "tp");
      dp_group_ = group(o, "dp");
      timeout_ms_ = get_int_or(o, "timeoutMs", 120000);
      return 0;
    });
  }

  std::pair<std::unique_ptr<Communicator>, std::unique_ptr<Communicator>> take() {
    if (!tp_ || !dp_) throw Error("ERR_ARGUMENT", "connect() the NcclPlane before creating the engine with it (once)");
    return {std::move(tp_), std::move(dp_)};
  }

 private:
  static Group group(const Napi::Object& o, const char* key) {
    Napi::Value v = o.Get(key);
    if (!v.IsObject()) throw Error("ERR_ARGUMENT", std::string("NcclPlane needs ") + key + ": {rank, size, id}");
    Napi::Object g = v.As<Napi::Object>();
    Napi::Value id = g.Get("id");
    if (!id.IsTypedArray() || id.As<Napi::Uint8Array>().ElementLength() != nccl::kUniqueIdBytes)
      throw Error("ERR_ARGUMENT", std::string("NcclPlane ") + key + ".id must be the " +
                                      std::to_string(nccl::kUniqueIdBytes) + "-byte id from ncclUniqueId()");
    Napi::Uint8Array bytes = id.As<Napi::Uint8Array>();
    return Group{get_int_or(g, "rank", -1), get_int_or(g, "size", 0),
                 std::string(reinterpret_cast<const char*>(bytes.Data()), bytes.ElementLength())};
  }

  Napi::Value Kind(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), "nccl"); }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_ || tp_) throw make_error(env, "ERR_ARGUMENT", "this NcclPlane cannot connect again");
    busy_ = true;
    auto body = [this] {
      const int device = cuda::engine_device();
      tp_ = std::make_unique<NcclCommunicator>(tp_group_.rank, tp_group_.size, tp_group_.id, device, timeout_ms_,
                                               "tensor-parallel");
      dp_ = std::make_unique<NcclCommunicator>(dp_group_.rank, dp_group_.size, dp_group_.id, device, timeout_ms_,
                                               "data-parallel");
    };
    return queue_job(new PoolJob(env, info.This().As<Napi::Object>(), body, {}, [this] { busy_ = false; }));
  }

  Group tp_group_, dp_group_;
  int timeout_ms_ = 120000;
  std::unique_ptr<Communicator> tp_, dp_;
  std::atomic<bool> busy_{false};
};

Napi::FunctionReference* NcclPlaneWrap::constructor = nullptr;

// ncclUniqueId() → Uint8Array(128): the id of a group this worker is the first member of.
Napi::Value NcclUniqueIdOf(const Napi::CallbackInfo& info) {
  const std::string id = guarded(info.Env(), [] { return NcclCommunicator::new_unique_id(); });
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), id.size());
  std::copy(id.begin(), id.end(), out.Data());
  return out;
}
#endif
Napi::FunctionReference* DataPlaneWrap::constructor = nullptr;

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("paramTable", &EngineWrap::ParamTable),
                        InstanceMethod("numParams", &EngineWrap::NumParams),
                        InstanceMethod("memoryReport", &EngineWrap::MemoryReportOf),
                        InstanceMethod("initParams", &EngineWrap::InitParams),
                        InstanceMethod("getParams", &EngineWrap::GetParams),
                        InstanceMethod("setParams", &EngineWrap::SetParams),
                        InstanceMethod("getGrads", &EngineWrap::GetGrads),
                        InstanceMethod("getOptimizerState", &EngineWrap::GetOptimizerState),
                        InstanceMethod("setOptimizerState", &EngineWrap::SetOptimizerState),
                        InstanceMethod("copyStateInto", &EngineWrap::CopyStateInto),
                        InstanceMethod("optimizerStep", &EngineWrap::OptimizerStep),
                        InstanceMethod("trainStep", &EngineWrap::TrainStep),
                        InstanceMethod("forwardBackward", &EngineWrap::ForwardBackward),
                        InstanceMethod("evaluate", &EngineWrap::Evaluate),
                        InstanceMethod("logits", &EngineWrap::Logits)});
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    guarded(info.Env(), [&] {
      if (info.Length() < 1 || !info[0].IsObject()) throw Error("ERR_ARGUMENT", "new Engine(options) needs an object");
      engine_ = std::make_unique<Engine>(parse_config(info[0].As<Napi::Object>()));
      // new Engine(options, dataPlane): train as one rank of a tensor/data-parallel job.
      if (info.Length() > 1 && !info[1].IsUndefined()) {
        const bool is_object = info[1].IsObject();
        const Napi::Object plane = is_object ? info[1].As<Napi::Object>() : Napi::Object::New(info.Env());
        std::pair<std::unique_ptr<Communicator>, std::unique_ptr<Communicator>> groups;
        if (is_object && plane.InstanceOf(DataPlaneWrap::constructor->Value()))
          groups = DataPlaneWrap::Unwrap(plane)->take();
#if defined(PARATRAIN_BACKEND_CUDA)
        else if (is_object && plane.InstanceOf(NcclPlaneWrap::constructor->Value()))
          groups = NcclPlaneWrap::Unwrap(plane)->take();
#endif
        else
          throw Error("ERR_ARGUMENT", "the second argument of new Engine() must be a DataPlane (or an NcclPlane)");
        engine_->set_communicators(std::move(groups.first), std::move(groups.second));
      }
      return 0;
    });
  }

 private:
  Engine& engine() { return *engine_; }

  void require_idle(Napi::Env env) {
    if (engine_->busy) throw make_error(env, "ERR_ENGINE_BUSY", "the engine is running a step; await it first");
  }

  Napi::Value ParamTable(const Napi::CallbackInfo& info) { return param_table(info.Env(), engine().layout()); }

 public:
  static Napi::Value param_table(Napi::Env env, const ParamLayout& layout) {
    const auto& ps = layout.params();
    Napi::Array arr = Napi::Array::New(env, ps.size());
    for (size_t i = 0; i < ps.size(); i++) {
      const ParamInfo& p = ps[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", p.name);
      Napi::Array shape = Napi::Array::New(env, p.shape.size());
      Napi::Array gshape = Napi::Array::New(env, p.global_shape.size());
      for (size_t d = 0; d < p.shape.size(); d++) {
        shape.Set(d, static_cast<double>(p.shape[d]));
        gshape.Set(d, static_cast<double>(p.global_shape[d]));
      }
      o.Set("shape", shape);
      o.Set("globalShape", gshape);
      o.Set("splitDim", p.split_dim);
      o.Set("shardStart", static_cast<double>(p.shard_start));
      o.Set("shardValid", static_cast<double>(p.shard_valid));
      o.Set("offset", static_cast<double>(p.offset));
      o.Set("numel", static_cast<double>(p.numel));
      o.Set("decay", p.decay);
      arr.Set(i, o);
    }
    return arr;
  }

 private:
  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(engine().layout().total()));
  }

  // {params, grads, optimizer, activations, deviceUsed?, deviceTotal?} in bytes, measured when the
  // engine was made (the device figures only in the CUDA build).
  Napi::Value MemoryReportOf(const Napi::CallbackInfo& info) {
    const MemoryReport& r = engine().memory();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("params", static_cast<double>(r.params));
    o.Set("grads", static_cast<double>(r.grads));
    o.Set("optimizer", static_cast<double>(r.optimizer));
    o.Set("activations", static_cast<double>(r.activations));
    if (r.device_used >= 0) {
      o.Set("deviceUsed", static_cast<double>(r.device_used));
      o.Set("deviceTotal", static_cast<double>(r.device_total));
    }
    return o;
  }

  Napi::Value InitParams(const Napi::CallbackInfo& info) {
    require_idle(info.Env());
    const double seed = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
    engine().init_params(static_cast<uint64_t>(seed));
    return info.Env().Undefined();
  }

  static Napi::Float32Array copy_out(Napi::Env env, const std::vector<float>& src) {
    Napi::Float32Array out = Napi::Float32Array::New(env, src.size());
    std::copy(src.begin(), src.end(), out.Data());
    return out;
  }

  // `v` as a Float32Array of exactly `size` values, or ERR_ARGUMENT saying why not.
  Napi::Float32Array checked_source(Napi::Env env, size_t size, const Napi::Value& v, const char* what) {
    return guarded(env, [&] {
      Napi::Float32Array arr = typed_array<Napi::Float32Array>(v, what);
      if (arr.ElementLength() != size)
        throw Error("ERR_ARGUMENT", std::string(what) + " holds " + std::to_string(arr.ElementLength()) +
                                        " values; the engine has " + std::to_string(size));
      return arr;
    });
  }
  // The engine's flat state has layout().total() values per array; the engine copies between its
  // kernel memory and these host arrays.
  size_t state_size() { return static_cast<size_t>(engine().layout().total()); }
  Napi::Float32Array new_state_array(Napi::Env env) { return Napi::Float32Array::New(env, state_size()); }

  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    require_idle(info.Env());
    Napi::Float32Array out = new_state_array(info.Env());
    guarded(info.Env(), [&] { engine().read_params(out.Data()); return 0; });
    return out;
  }
  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    require_idle(info.Env());
    const Napi::Float32Array src = checked_source(info.Env(), state_size(), info[0], "params");
    guarded(info.Env(), [&] { engine().write_params(src.Data()); return 0; });
    return info.Env().Undefined();
  }
  Napi::Value GetGrads(const Napi::CallbackInfo& info) {
    require_idle(info.Env());
    Napi::Float32Array out = new_state_array(info.Env());
    guarded(info.Env(), [&] { engine().read_grads(out.Data()); return 0; });
    return out;
  }
  // Copies parameters and optimizer moments into the caller's buffers (a checkpoint's host copy,
  // reused from save to save so that no save pays for fresh pages); returns the update count.
  Napi::Value CopyStateInto(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    require_idle(env);
    if (info.Length() < 1 || !info[0].IsObject()) throw make_error(env, "ERR_ARGUMENT", "expected {params, m, v}");
    Napi::Object o = info[0].As<Napi::Object>();
    guarded(env, [&] {
      for (const char* name : {"params", "m", "v"}) {
        Napi::Float32Array dst = typed_array<Napi::Float32Array>(o.Get(name), name);
        if (dst.ElementLength() != state_size())
          throw Error("ERR_ARGUMENT", std::string(name) + " holds " + std::to_string(dst.ElementLength()) +
                                          " values; the engine has " + std::to_string(state_size()));
      }
      engine().read_params(o.Get("params").As<Napi::Float32Array>().Data());
      engine().read_moments(o.Get("m").As<Napi::Float32Array>().Data(), o.Get("v").As<Napi::Float32Array>().Data());
      return 0;
    });
    return Napi::Number::New(env, static_cast<double>(engine().optimizer().step_count()));
  }

  // This rank's own optimizer state (the local layout of paramTable()), e.g. read back from its
  // checkpoint slices.
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    require_idle(env);
    if (info.Length() < 1 || !info[0].IsObject()) throw make_error(env, "ERR_ARGUMENT", "expected {step, m, v}");
    Napi::Object o = info[0].As<Napi::Object>();
    // Both moments are checked before either is written: a bad v must not leave a new m behind.
    const Napi::Float32Array m_src = checked_source(env, state_size(), o.Get("m"), "optimizer m");
    const Napi::Float32Array v_src = checked_source(env, state_size(), o.Get("v"), "optimizer v");
    guarded(env, [&] { engine().write_moments(m_src.Data(), v_src.Data()); return 0; });
    engine().optimizer().set_step_count(static_cast<int64_t>(get_num_or(o, "step", 0)));
    return env.Undefined();
  }
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    require_idle(info.Env());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("step", static_cast<double>(engine().optimizer().step_count()));
    Napi::Float32Array m = new_state_array(info.Env()), v = new_state_array(info.Env());
    guarded(info.Env(), [&] { engine().read_moments(m.Data(), v.Data()); return 0; });
    o.Set("m", m);
    o.Set("v", v);
    return o;
  }

  // Sets the gradient buffer and applies one optimizer update (synchronous; for tests and tools).
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    require_idle(env);
    const Napi::Float32Array grads = checked_source(env, state_size(), info[0], "grads");
    guarded(env, [&] { engine().write_grads(grads.Data()); return 0; });
    const float lr = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().FloatValue() : 0.0f;
    const OptimizerResult r = guarded(env, [&] { return engine().apply_optimizer(lr); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("gradNorm", r.grad_norm);
    o.Set("skipped", r.skipped);
    return o;
  }

  // Copies JS batches into the engine's staging slots; returns how many micro-batches.
  int stage_batches(Napi::Env env, const Napi::Value& v, bool allow_empty = false) {
    return guarded(env, [&] {
      if (!v.IsArray()) throw Error("ERR_ARGUMENT", "batches must be an array of micro-batches");
      Napi::Array arr = v.As<Napi::Array>();
      const int count = static_cast<int>(arr.Length());
      if (count < (allow_empty ? 0 : 1)) throw Error("ERR_ARGUMENT", "at least one micro-batch is needed");
      for (int i = 0; i < count; i++) {
        Napi::Value item = arr.Get(static_cast<uint32_t>(i));
        if (!item.IsObject()) throw Error("ERR_ARGUMENT", "micro-batch " + std::to_string(i) + " is not an object");
        Napi::Object b = item.As<Napi::Object>();
        StagedBatch& s = engine().stage(i);
        s.batch = get_int_or(b, "batchSize", 0);
        s.seq = get_int_or(b, "seqLen", 0);
        copy_into<int32_t, Napi::Int32Array>(s.tokens, b.Get("tokens"), "tokens", napi_int32_array);
        copy_into<int32_t, Napi::Int32Array>(s.labels, b.Get("labels"), "labels", napi_int32_array);
        s.has_segments = b.Get("segments").IsTypedArray();
        if (s.has_segments)
          copy_into<int32_t, Napi::Int32Array>(s.segments, b.Get("segments"), "segments", napi_int32_array);
        s.has_mask = b.Get("attentionMask").IsTypedArray();
        if (s.has_mask)
          copy_into<uint8_t, Napi::Uint8Array>(s.key_mask, b.Get("attentionMask"), "attentionMask", napi_uint8_array);
        s.has_pair = b.Get("pairLabels").IsTypedArray();
        if (s.has_pair)
          copy_into<int32_t, Napi::Int32Array>(s.pair_labels, b.Get("pairLabels"), "pairLabels", napi_int32_array);
        s.has_class_labels = b.Get("classLabels").IsTypedArray();
        if (s.has_class_labels)
          copy_into<int32_t, Napi::Int32Array>(s.class_labels, b.Get("classLabels"), "classLabels", napi_int32_array);
        s.has_targets = b.Get("targets").IsTypedArray();
        if (s.has_targets)
          copy_into<float, Napi::Float32Array>(s.targets, b.Get("targets"), "targets", napi_float32_array);
        s.has_spans = b.Get("startPositions").IsTypedArray() || b.Get("endPositions").IsTypedArray();
        if (s.has_spans) {
          copy_into<int32_t, Napi::Int32Array>(s.start_positions, b.Get("startPositions"), "startPositions",
                                               napi_int32_array);
          copy_into<int32_t, Napi::Int32Array>(s.end_positions, b.Get("endPositions"), "endPositions",
                                               napi_int32_array);
        }
        s.has_samples = b.Get("sampledTokens").IsTypedArray();
        if (s.has_samples)
          copy_into<int32_t, Napi::Int32Array>(s.fixed_samples, b.Get("sampledTokens"), "sampledTokens",
                                               napi_int32_array);
        // The sampling stream of sequence b is keyed by its index in its split's stream.
        const double first = get_num_or(b, "firstSample", 0);
        if (!(first >= 0) || first > 4503599627370496.0)  // 2^52: the eval split's tag sits above
          throw Error("ERR_ARGUMENT", "firstSample must be a non-negative integer below 2^52");
        s.first_sample = static_cast<uint64_t>(first) | (get_str_or(b, "split", "train") == "eval" ? 1ull << 52 : 0);
        engine().check_staged(i);
      }
      return count;
    });
  }

  // A job that holds the engine's busy flag until it settles.
  Napi::Value run_job(const Napi::CallbackInfo& info, PoolJob::Body body, PoolJob::Result result) {
    Engine* e = engine_.get();
    return queue_job(new PoolJob(info.Env(), info.This().As<Napi::Object>(), std::move(body), std::move(result),
                                 [e] { e->busy = false; }));
  }

  Napi::Value TrainStep(const Napi::CallbackInfo& info) { return step_job(info, true); }
  Napi::Value ForwardBackward(const Napi::CallbackInfo& info) { return step_job(info, false); }

  Napi::Value step_job(const Napi::CallbackInfo& info, bool apply_optimizer) {
    Napi::Env env = info.Env();
    require_idle(env);
    const int count = stage_batches(env, info[0]);
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    const uint64_t step = static_cast<uint64_t>(get_num_or(opts, "step", 0));
    const float lr = static_cast<float>(get_num_or(opts, "lr", 0));
    const uint32_t requests = static_cast<uint32_t>(get_num_or(opts, "requests", 0)) & (kRequestSave | kRequestStop);
    const float loss_scale = loss_scale_arg(get_num_or(opts, "lossScale", 1));
    engine_->busy = true;
    auto metrics = std::make_shared<StepMetrics>();
    Engine* e = engine_.get();
    return run_job(
        info,
        [=] {
          *metrics = apply_optimizer ? e->train_step(count, step, lr, requests, loss_scale)
                                     : e->forward_backward(count, step, requests, loss_scale);
        },
        [=](Napi::Env env) -> Napi::Value { return metrics_object(env, *metrics, e->model()); });
  }

  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    require_idle(env);
    // A data-parallel replica may have no share of an evaluation call but still joins its averaging.
    const int count = stage_batches(env, info[0], engine().config().dp_size > 1);
    engine_->busy = true;
    auto metrics = std::make_shared<StepMetrics>();
    Engine* e = engine_.get();
    return run_job(
        info, [=] { *metrics = e->evaluate(count); },
        [=](Napi::Env env) -> Napi::Value { return metrics_object(env, *metrics, e->model()); });
  }

  Napi::Value Logits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    require_idle(env);
    Napi::Array one = Napi::Array::New(env, 1);
    one.Set(0u, info[0]);
    stage_batches(env, one);
    // logits(batch, { hidden: true }) also returns the last stack's output.
    const bool want_hidden = info.Length() > 1 && info[1].IsObject() &&
                             info[1].As<Napi::Object>().Get("hidden").ToBoolean().Value();
    engine_->busy = true;
    struct Out {
      std::vector<float> logits, classes, positions, hidden;
      std::vector<int> rows;
      StepMetrics metrics;
    };
    auto out = std::make_shared<Out>();
    Engine* e = engine_.get();
    return run_job(
        info,
        [=] {
          out->metrics = e->forward_logits(&out->logits, &out->rows, &out->classes, &out->positions,
                                           want_hidden ? &out->hidden : nullptr);
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("logits", copy_out(env, out->logits));
          Napi::Int32Array rows = Napi::Int32Array::New(env, out->rows.size());
          std::copy(out->rows.begin(), out->rows.end(), rows.Data());
          o.Set("rows", rows);
          o.Set("classLogits", copy_out(env, out->classes));
          o.Set("positionLogits", copy_out(env, out->positions));
          if (want_hidden) o.Set("hidden", copy_out(env, out->hidden));
          const Napi::Object m = metrics_object(env, out->metrics, e->model());
          o.Set("loss", m.Get("loss"));
          o.Set("losses", m.Get("losses"));
          return o;
        });
  }

  std::unique_ptr<Engine> engine_;
};

// paramTable(options): the parameter table of the model the options describe, without building an
// engine (no buffers, no activations): the one source of tensor names for checkpoints and interop.
Napi::Value ParamTableOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject()) throw Error("ERR_ARGUMENT", "paramTable(options) needs an object");
    const EngineConfig c = parse_config(info[0].As<Napi::Object>());
    const Model model(c.model);
    return EngineWrap::param_table(env, model.layout());
  });
}

#if defined(PARATRAIN_BACKEND_CUDA)
// The GPU this process uses: LOCAL_RANK (set by the launcher for each worker) modulo the devices it
// can see (CUDA_VISIBLE_DEVICES narrows those). Without a device the addon does not load: `device:
// cuda` then fails loudly instead of training somewhere else. Returns "name (sm_XY), device i of n".
std::string choose_device() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0)
    throw Error("ERR_NO_CUDA_DEVICE",
                std::string("the CUDA engine sees no GPU (") +
                    (err != cudaSuccess ? cudaGetErrorString(err) : "no devices") +
                    "): check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES, or set device: cpu");
  const char* local = std::getenv("LOCAL_RANK");
  const int device = (local ? std::atoi(local) : 0) % count;
  cuda::engine_device() = device;
  kernels::bind_thread();
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + "), device " +
         std::to_string(device) + " of " + std::to_string(count);
}
#endif

// takeRefusedHandshakes() → [{ring, address, count}]: the data-plane connections refused since the
// last call (ZmqRingCommunicator::take_refused_handshakes); the trainer logs them, rate-limited.
Napi::Value TakeRefusedHandshakes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<RefusedHandshakes> refused = ZmqRingCommunicator::take_refused_handshakes();
  Napi::Array out = Napi::Array::New(env, refused.size());
  for (size_t i = 0; i < refused.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("ring", refused[i].ring);
    o.Set("address", refused[i].address);
    o.Set("count", Napi::Number::New(env, static_cast<double>(refused[i].count)));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(PARATRAIN_BACKEND_CUDA)
  const std::string device = guarded(env, [] { return choose_device(); });
#endif
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("paramTable", Napi::Function::New(env, ParamTableOf, "paramTable"));
  exports.Set("DataPlane", DataPlaneWrap::Define(env));
  exports.Set("takeRefusedHandshakes", Napi::Function::New(env, TakeRefusedHandshakes, "takeRefusedHandshakes"));
#if defined(PARATRAIN_BACKEND_CUDA)
  exports.Set("NcclPlane", NcclPlaneWrap::Define(env));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueIdOf, "ncclUniqueId"));
#endif
  exports.Set("abiVersion", Napi::Number::New(env, 5));
#if defined(PARATRAIN_BACKEND_CUDA)
  exports.Set("backend", Napi::String::New(env, "cuda"));
  exports.Set("blasCore", Napi::String::New(env, "cuBLASLt on " + device));
#else
  exports.Set("backend", Napi::String::New(env, "cpu"));
  exports.Set("blasCore", Napi::String::New(env, openblas_get_corename()));
#endif
  return exports;
}

}  // namespace
}  // namespace paratrain

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return paratrain::Init(env, exports); }

NODE_API_MODULE(paratrain_addon, InitAddon)
