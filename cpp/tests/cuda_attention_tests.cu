// cuda_attention_tests.cu — the CUDA attention (cpp/kernels/cuda/attention.cu) against the CPU
// reference (cpp/kernels/cpu/attention.h) on fresh random inputs: forward ctx and dq, dk, dv,
// causal and key-padding masks, dropout 0 and 0.1 (same counter stream ⇒ same mask), T ∈ {64, 100,
// 256}, head_dim 32/64/96/128. Tolerance ‖gpu − cpu‖ / ‖cpu‖: float 1e-5, bf16 1e-2 (the CPU runs in
// float on the bf16-rounded inputs). Exit 77 when there is no CUDA device; ends with "N passed, M failed".
#include <cuda_bf16.h>     // __nv_bfloat16
#include <cuda_runtime.h>  // cudaMalloc, cudaMemcpy, cudaGetDeviceCount

#include <cmath>      // std::sqrt
#include <cstdint>    // uint8_t, uint64_t
#include <cstdio>     // std::printf, std::snprintf
#include <cstdlib>    // std::exit
#include <cstring>    // std::memcmp
#include <random>     // std::mt19937
#include <string>     // std::string
#include <vector>     // std::vector

#include "../common/error.h"          // paratrain::Error
#include "../common/rng.h"            // rng_key
#include "../kernels/cpu/attention.h"  // cpu::attention_forward/backward (reference)
#include "../kernels/cuda/attention.cuh"  // cuda::attention_forward/backward

namespace {

int g_passed = 0, g_failed = 0;

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::printf("CUDA error in %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) { check_cuda(cudaMalloc(&ptr, count * sizeof(T) + 16), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

template <typename T>
T to_storage(float v);
template <>
float to_storage<float>(float v) { return v; }
template <>
__nv_bfloat16 to_storage<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
float to_float(float v) { return v; }
float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// Host values → storage type on the device; `rounded` receives what the device holds, as float.
template <typename T>
void upload(DeviceBuffer<T>& dst, const std::vector<float>& src, std::vector<float>& rounded) {
  std::vector<T> tmp(src.size());
  rounded.resize(src.size());
  for (size_t i = 0; i < src.size(); i++) {
    tmp[i] = to_storage<T>(src[i]);
    rounded[i] = to_float(tmp[i]);
  }
  check_cuda(cudaMemcpy(dst.ptr, tmp.data(), tmp.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
}

template <typename T>
std::vector<float> download(const DeviceBuffer<T>& src, size_t n) {
  std::vector<T> tmp(n);
  check_cuda(cudaMemcpy(tmp.data(), src.ptr, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
  std::vector<float> out(n);
  for (size_t i = 0; i < n; i++) out[i] = to_float(tmp[i]);
  return out;
}

// ‖a − b‖ / ‖b‖ over the elements selected by `take(i)`.
template <typename Take>
double rel_err(const std::vector<float>& a, const std::vector<float>& b, Take take) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (!take(i)) continue;
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  if (den == 0) return num == 0 ? 0.0 : 1e30;
  return std::sqrt(num / den);
}

void report(const std::string& name, double err, double tol) {
  const bool ok = err <= tol && err == err;
  std::printf("%s %-72s rel %.3e (tol %.0e)\n", ok ? "ok  " : "FAIL", name.c_str(), err, tol);
  (ok ? g_passed : g_failed)++;
}

struct Case {
  int B, T, heads, d;
  bool causal, key_mask, all_padding_row;
  float dropout;
};

template <typename T>
void run_case(const Case& c, const char* type_name, double tol) {
  const int C = c.heads * c.d, C3 = 3 * C;
  const size_t n_qkv = static_cast<size_t>(c.B) * c.T * C3, n_ctx = static_cast<size_t>(c.B) * c.T * C;
  const size_t n_rows = static_cast<size_t>(c.B) * c.heads * c.T;
  std::mt19937 gen(1234u + c.T * 7u + c.d + (c.causal ? 1u : 0u) + (c.dropout > 0 ? 2u : 0u));
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> qkv(n_qkv), dctx(n_ctx);
  for (auto& v : qkv) v = 1.5f * uni(gen);  // never zeros; peaked enough that softmax is not uniform
  for (auto& v : dctx) v = uni(gen);

  std::vector<uint8_t> mask;
  if (c.key_mask) {
    mask.assign(static_cast<size_t>(c.B) * c.T, 1);
    std::uniform_int_distribution<int> pct(0, 99);
    for (int b = 0; b < c.B; b++)
      for (int t = 1; t < c.T; t++) {  // position 0 is a real token ([CLS])
        if (b == 0 && t >= c.T - 7) mask[static_cast<size_t>(b) * c.T + t] = 0;  // trailing padding
        if (b == 1 && pct(gen) < 20) mask[static_cast<size_t>(b) * c.T + t] = 0;  // scattered holes
      }
    if (c.all_padding_row)
      for (int t = 0; t < c.T; t++) mask[static_cast<size_t>(c.B - 1) * c.T + t] = 0;  // every key masked
  }
  const uint64_t key = paratrain::rng_key(42, 7, 16 + 4 * 3);

  DeviceBuffer<T> d_qkv(n_qkv), d_dctx(n_ctx), d_ctx(n_ctx), d_dqkv(n_qkv);
  DeviceBuffer<float> d_lse(n_rows), d_delta(n_rows);
  DeviceBuffer<uint8_t> d_mask(mask.empty() ? 1 : mask.size());
  std::vector<float> qkv_r, dctx_r;
  upload(d_qkv, qkv, qkv_r);
  upload(d_dctx, dctx, dctx_r);
  if (!mask.empty())
    check_cuda(cudaMemcpy(d_mask.ptr, mask.data(), mask.size(), cudaMemcpyHostToDevice), "mask upload");

  // CPU reference in float on exactly the values the device holds.
  paratrain::cpu::AttentionShape hs{c.B, c.T, c.heads, c.d, c.causal, mask.empty() ? nullptr : mask.data(), c.dropout,
                                    key};
  std::vector<float> ctx_ref(n_ctx), probs(static_cast<size_t>(c.B) * c.heads * c.T * c.T),
      scratch(2 * static_cast<size_t>(c.T) * c.T), dqkv_ref(n_qkv);
  paratrain::cpu::attention_forward(ctx_ref.data(), probs.data(), qkv_r.data(), hs, scratch.data());
  paratrain::cpu::attention_backward(dqkv_ref.data(), dctx_r.data(), qkv_r.data(), ctx_ref.data(), probs.data(), hs,
                                     scratch.data());

  paratrain::cuda::AttentionShape ds{c.B, c.T, c.heads, c.d, c.causal, mask.empty() ? nullptr : d_mask.ptr, c.dropout,
                                     key};
  paratrain::cuda::attention_forward(d_ctx.ptr, d_lse.ptr, d_qkv.ptr, ds);
  check_cuda(cudaMemset(d_dqkv.ptr, 0xFF, n_qkv * sizeof(T)), "poison dqkv");  // every element must be written
  paratrain::cuda::attention_backward(d_dqkv.ptr, d_dctx.ptr, d_qkv.ptr, d_ctx.ptr, d_lse.ptr, ds, d_delta.ptr);
  check_cuda(cudaDeviceSynchronize(), "attention kernels");
  const std::vector<float> ctx = download(d_ctx, n_ctx), dqkv = download(d_dqkv, n_qkv);

  char name[200];
  std::snprintf(name, sizeof name, "%s B%d T%d h%d d%d %s%s%s drop%.1f", type_name, c.B, c.T, c.heads, c.d,
                c.causal ? "causal" : "bidir", c.key_mask ? "+keymask" : "", c.all_padding_row ? "+allpad" : "",
                c.dropout);
  auto part = [&](int which) { return [=](size_t i) { return static_cast<int>((i % C3) / C) == which; }; };
  report(std::string(name) + " ctx", rel_err(ctx, ctx_ref, [](size_t) { return true; }), tol);
  report(std::string(name) + " dq", rel_err(dqkv, dqkv_ref, part(0)), tol);
  report(std::string(name) + " dk", rel_err(dqkv, dqkv_ref, part(1)), tol);
  report(std::string(name) + " dv", rel_err(dqkv, dqkv_ref, part(2)), tol);
}

// Two runs of the backward give the same bits (no atomics).
void determinism_case() {
  const Case c{2, 100, 2, 64, true, false, false, 0.1f};
  const int C3 = 3 * c.heads * c.d;
  const size_t n_qkv = static_cast<size_t>(c.B) * c.T * C3, n_ctx = n_qkv / 3, n_rows = static_cast<size_t>(c.B) * c.heads * c.T;
  std::mt19937 gen(99);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> qkv(n_qkv), dctx(n_ctx), r1, r2;
  for (auto& v : qkv) v = uni(gen);
  for (auto& v : dctx) v = uni(gen);
  DeviceBuffer<float> d_qkv(n_qkv), d_dctx(n_ctx), d_ctx(n_ctx), d_dqkv(n_qkv), d_lse(n_rows), d_delta(n_rows);
  upload(d_qkv, qkv, r1);
  upload(d_dctx, dctx, r2);
  paratrain::cuda::AttentionShape ds{c.B, c.T, c.heads, c.d, c.causal, nullptr, c.dropout, 77};
  paratrain::cuda::attention_forward(d_ctx.ptr, d_lse.ptr, d_qkv.ptr, ds);
  paratrain::cuda::attention_backward(d_dqkv.ptr, d_dctx.ptr, d_qkv.ptr, d_ctx.ptr, d_lse.ptr, ds, d_delta.ptr);
  check_cuda(cudaDeviceSynchronize(), "determinism run 1");
  const std::vector<float> first = download(d_dqkv, n_qkv);
  paratrain::cuda::attention_backward(d_dqkv.ptr, d_dctx.ptr, d_qkv.ptr, d_ctx.ptr, d_lse.ptr, ds, d_delta.ptr);
  check_cuda(cudaDeviceSynchronize(), "determinism run 2");
  const std::vector<float> second = download(d_dqkv, n_qkv);
  const bool same = std::memcmp(first.data(), second.data(), n_qkv * sizeof(float)) == 0;
  report("float backward bitwise identical across two runs", same ? 0.0 : 1.0, 0.0);

  // The unified contract the model calls: its sizes, and the five-argument forward is the same kernel.
  const bool sizes = paratrain::cuda::attention_saved_floats(ds) == static_cast<long>(n_rows) &&
                     paratrain::cuda::attention_scratch_floats(ds, 8) == static_cast<long>(n_rows);
  report("attention_saved_floats / attention_scratch_floats = B*heads*T", sizes ? 0.0 : 1.0, 0.0);
  DeviceBuffer<float> d_ctx2(n_ctx), d_saved(paratrain::cuda::attention_saved_floats(ds)),
      d_scratch(paratrain::cuda::attention_scratch_floats(ds, 1));
  paratrain::cuda::attention_forward(d_ctx2.ptr, d_saved.ptr, d_qkv.ptr, ds, d_scratch.ptr);
  check_cuda(cudaDeviceSynchronize(), "five-argument forward");
  const std::vector<float> ctx1 = download(d_ctx, n_ctx), ctx2 = download(d_ctx2, n_ctx),
                           lse1 = download(d_lse, n_rows), lse2 = download(d_saved, n_rows);
  const bool same_fwd = std::memcmp(ctx1.data(), ctx2.data(), n_ctx * sizeof(float)) == 0 &&
                        std::memcmp(lse1.data(), lse2.data(), n_rows * sizeof(float)) == 0;
  report("five-argument attention_forward == four-argument (ctx, lse bitwise)", same_fwd ? 0.0 : 1.0, 0.0);
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  std::vector<Case> cases;
  const int Ts[] = {64, 100, 256}, ds[] = {32, 64, 128};
  for (int t = 0; t < 3; t++)
    for (int causal = 0; causal < 2; causal++)
      for (float p : {0.0f, 0.1f}) cases.push_back({2, Ts[t], 2, ds[t], causal == 1, causal == 0, false, p});
  cases.push_back({2, 100, 3, 96, false, true, false, 0.1f});  // head_dim 96
  cases.push_back({3, 64, 2, 64, false, true, true, 0.0f});    // a sequence that is all padding
  cases.push_back({2, 100, 2, 64, true, true, false, 0.1f});   // causal and key mask together

  for (const Case& c : cases) run_case<float>(c, "float", 1e-5);
  for (const Case& c : cases) run_case<__nv_bfloat16>(c, "bf16 ", 1e-2);
  determinism_case();
  try {  // an unsupported head size is refused before any launch
    paratrain::cuda::AttentionShape bad{1, 8, 1, 48, false, nullptr, 0.0f, 0};
    paratrain::cuda::attention_forward<float>(nullptr, nullptr, nullptr, bad);
    report("head_dim 48 refused with ERR_ARGUMENT", 1.0, 0.0);
  } catch (const paratrain::Error& e) {
    report("head_dim 48 refused with ERR_ARGUMENT", e.code() == "ERR_ARGUMENT" ? 0.0 : 1.0, 0.0);
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
