// cuda_kernel_tests.cu — every CUDA kernel (cpp/kernels/cuda/) against its CPU reference
// (cpp/kernels/cpu/, in float) on fresh random inputs, in fp32 and bf16. For bf16 the inputs are
// rounded to bf16 first and the CPU runs in float on exactly those values.
// Tolerances on ‖out − ref‖ / ‖ref‖: fp32 ≤ 1e-5, bf16 ≤ 1e-2 (8 mantissa bits: one rounding of
// the output alone costs up to 4e-3). Dropout masks must match the CPU's bit for bit, and the
// reductions written to be deterministic must give bitwise identical results on a second run.
// Prints one line per check and "N passed, M failed"; exits 1 on failures, 77 with no CUDA device.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "../kernels/cpu/cross_entropy.h"
#include "../kernels/cpu/dropout.h"
#include "../kernels/cpu/embedding.h"
#include "../kernels/cpu/gelu.h"
#include "../kernels/cpu/layernorm.h"
#include "../kernels/cpu/rows.h"
#include "../kernels/cpu/sampling.h"
#include "../kernels/cpu/tensor_ops.h"
#include "../kernels/cuda/buffer.h"
#include "../kernels/cuda/common.cuh"
#include "../kernels/cuda/cross_entropy.cuh"
#include "../kernels/cuda/elementwise.cuh"
#include "../kernels/cuda/embedding.cuh"
#include "../kernels/cuda/layernorm.cuh"
#include "../kernels/cuda/optimizer.cuh"
#include "../kernels/cuda/rows.cuh"
#include "../kernels/cuda/sampling.cuh"
#include "../kernels/cuda/tensor_ops.cuh"

using namespace paratrain;
using Vec = std::vector<float>;
using bf16 = __nv_bfloat16;

namespace {

// ---- host helpers -------------------------------------------------------------------------------

std::mt19937_64 rng(20261127);
Vec randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
std::vector<int> randint(size_t n, int lo, int hi) {  // [lo, hi)
  std::uniform_int_distribution<int> d(lo, hi - 1);
  std::vector<int> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

template <typename T>
const char* dtype_name();
template <>
const char* dtype_name<float>() { return "fp32"; }
template <>
const char* dtype_name<bf16>() { return "bf16"; }
template <typename T>
double tolerance();
template <>
double tolerance<float>() { return 1e-5; }
template <>
double tolerance<bf16>() { return 1e-2; }

float host_to_float(float x) { return x; }
float host_to_float(bf16 x) { return __bfloat162float(x); }
template <typename T>
T host_from_float(float x);
template <>
float host_from_float<float>(float x) { return x; }
template <>
bf16 host_from_float<bf16>(float x) { return __float2bfloat16(x); }

// Rounds v to what T can hold, in place, so the CPU reference sees exactly the device's inputs.
template <typename T>
Vec& round_to(Vec& v) {
  for (auto& x : v) x = host_to_float(host_from_float<T>(x));
  return v;
}

template <typename T>
Vec rounded(Vec v) {
  return round_to<T>(v);
}

// A device array that frees itself.
template <typename E>
struct Dev {
  E* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(E))); }
  Dev(const Dev&) = delete;
  ~Dev() { cudaFree(p); }
  operator E*() const { return p; }
};
template <typename T>
Dev<T>* upload(const Vec& v) {
  std::vector<T> h(v.size());
  for (size_t i = 0; i < v.size(); i++) h[i] = host_from_float<T>(v[i]);
  auto* d = new Dev<T>(v.size());
  CUDA_CHECK(cudaMemcpy(d->p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename E>
Dev<E>* upload_raw(const std::vector<E>& v) {
  auto* d = new Dev<E>(v.size());
  CUDA_CHECK(cudaMemcpy(d->p, v.data(), v.size() * sizeof(E), cudaMemcpyHostToDevice));
  return d;
}
template <typename T>
Vec download(const T* p, size_t n) {
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  Vec v(n);
  for (size_t i = 0; i < n; i++) v[i] = host_to_float(h[i]);
  return v;
}
template <typename E>
std::vector<E> download_raw(const E* p, size_t n) {
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<E> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(E), cudaMemcpyDeviceToHost));
  return h;
}

// ---- checks -------------------------------------------------------------------------------------

int passed = 0, failed = 0;

void report(const std::string& name, bool ok, const std::string& detail) {
  (ok ? passed : failed)++;
  std::printf("%s %-58s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);
}

double rel_err(const Vec& out, const Vec& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    diff += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  if (out.size() != ref.size()) return INFINITY;
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

void check_close(const std::string& name, const Vec& out, const Vec& ref, double tol) {
  double norm = 0;
  for (float x : ref) norm += double(x) * x;
  const double rel = rel_err(out, ref);
  char buf[96];
  std::snprintf(buf, sizeof buf, "rel_err=%.3e tol=%.0e", rel, tol);
  report(name, rel <= tol && norm > 0 && std::isfinite(rel), buf);  // a zero reference tests nothing
}

void check_scalar(const std::string& name, double out, double ref, double tol) {
  const double rel = std::fabs(out - ref) / std::max(std::fabs(ref), 1e-30);
  char buf[96];
  std::snprintf(buf, sizeof buf, "got=%.9g ref=%.9g rel=%.2e", out, ref, rel);
  report(name, rel <= tol, buf);
}

template <typename A, typename B>
void check_bitwise(const std::string& name, const std::vector<A>& a, const std::vector<B>& b) {
  static_assert(sizeof(A) == sizeof(B), "same element size");
  const bool ok = a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(A)) == 0;
  size_t diffs = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++) diffs += std::memcmp(&a[i], &b[i], sizeof(A)) != 0;
  report(name, ok, "differing elements: " + std::to_string(diffs) + " of " + std::to_string(a.size()));
}

std::string tag(const char* what, const char* dtype, const std::string& extra = "") {
  return std::string(what) + " [" + dtype + (extra.empty() ? "" : ", " + extra) + "]";
}

// ---- kernels ------------------------------------------------------------------------------------

template <typename T>
void test_layernorm(int N, int C) {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  const std::string shape = "N=" + std::to_string(N) + " C=" + std::to_string(C);
  Vec in = randn(size_t(N) * C, 2.0f), w = randn(C), b = randn(C, 0.5f);
  for (auto& x : in) x += 0.7f;  // a non-zero mean
  round_to<T>(in), round_to<T>(w), round_to<T>(b);
  Vec out(in.size()), mean(N), rstd(N);
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), in.data(), w.data(), b.data(), N, C, 1e-5f);
  Dev<T> *d_in = upload<T>(in), *d_w = upload<T>(w), *d_b = upload<T>(b);
  Dev<T> d_out(in.size()), d_mean(N), d_rstd(N);
  cuda::layernorm_forward<T>(d_out, d_mean, d_rstd, *d_in, *d_w, *d_b, N, C, host_from_float<T>(1e-5f));
  check_close(tag("layernorm_forward out", dt, shape), download(d_out.p, out.size()), out, tol);
  check_close(tag("layernorm_forward mean", dt, shape), download(d_mean.p, N), mean, tol);
  check_close(tag("layernorm_forward rstd", dt, shape), download(d_rstd.p, N), rstd, tol);

  // Backward from the saved statistics as T holds them (what the device kernel will read).
  round_to<T>(mean), round_to<T>(rstd);
  Vec dout = rounded<T>((randn(in.size())));
  Vec din0 = rounded<T>((randn(in.size()))), dw0 = rounded<T>((randn(C))),
      db0 = rounded<T>((randn(C)));
  Dev<T> *d_dout = upload<T>(dout), *d_mean2 = upload<T>(mean), *d_rstd2 = upload<T>(rstd);
  for (bool acc : {false, true}) {
    Vec din = din0, dw = dw0, db = db0;
    cpu::layernorm_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), mean.data(),
                            rstd.data(), N, C, acc);
    Dev<T> *d_din = upload<T>(din0), *d_dw = upload<T>(dw0), *d_db = upload<T>(db0);
    cuda::layernorm_backward<T>(*d_din, *d_dw, *d_db, *d_dout, *d_in, *d_w, *d_mean2, *d_rstd2, N, C, acc);
    const std::string s = shape + (acc ? " din+=" : " din=");
    check_close(tag("layernorm_backward din", dt, s), download(d_din->p, din.size()), din, tol);
    check_close(tag("layernorm_backward dw", dt, s), download(d_dw->p, C), dw, tol);
    check_close(tag("layernorm_backward db", dt, s), download(d_db->p, C), db, tol);
    if (acc) {  // determinism: a second run from the same state gives the same bits
      auto first_dw = download_raw(d_dw->p, C);
      Dev<T> *e_din = upload<T>(din0), *e_dw = upload<T>(dw0), *e_db = upload<T>(db0);
      cuda::layernorm_backward<T>(*e_din, *e_dw, *e_db, *d_dout, *d_in, *d_w, *d_mean2, *d_rstd2, N, C, acc);
      check_bitwise(tag("layernorm_backward dw reproducible", dt, shape), download_raw(e_dw->p, C), first_dw);
      delete e_din, delete e_dw, delete e_db;
    }
    delete d_din, delete d_dw, delete d_db;
  }
  delete d_in, delete d_w, delete d_b, delete d_dout, delete d_mean2, delete d_rstd2;
}

template <typename T>
void test_gelu(long n) {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  for (GeluForm form : {GeluForm::Erf, GeluForm::Tanh}) {
    const std::string s = std::string(form == GeluForm::Erf ? "erf" : "tanh") + " n=" + std::to_string(n);
    Vec in = randn(n, 2.0f), dout = randn(n);
    round_to<T>(in), round_to<T>(dout);
    Vec out(n), din(n);
    cpu::gelu_forward(out.data(), in.data(), n, form);
    cpu::gelu_backward(din.data(), dout.data(), in.data(), n, form);
    Dev<T> *d_in = upload<T>(in), *d_dout = upload<T>(dout);
    Dev<T> d_out(n);
    cuda::gelu_forward<T>(d_out, *d_in, n, form);
    check_close(tag("gelu_forward", dt, s), download(d_out.p, n), out, tol);
    cuda::gelu_backward<T>(*d_dout, *d_dout, *d_in, n, form);  // in place, as the model may call it
    check_close(tag("gelu_backward (din aliases dout)", dt, s), download(d_dout->p, n), din, tol);
    delete d_in, delete d_dout;
  }
}

template <typename T>
void test_dropout(long n, float p) {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  const std::string s = "p=" + std::to_string(p).substr(0, 4) + " n=" + std::to_string(n);
  const uint64_t key = rng_key(1234, 7, 42);
  Vec in = randn(n), res = randn(n);
  for (auto& x : in) x = x == 0 ? 1.0f : x;  // a zero input would hide the mask
  round_to<T>(in), round_to<T>(res);
  Vec out(n), rout(n), back(n);
  cpu::dropout_forward(out.data(), in.data(), n, p, key);
  cpu::residual_dropout_forward(rout.data(), res.data(), in.data(), n, p, key);
  cpu::dropout_backward(back.data(), in.data(), n, p, key);
  Dev<T> *d_in = upload<T>(in), *d_res = upload<T>(res);
  Dev<T> d_out(n), d_rout(n), d_back(n);
  cuda::dropout_forward<T>(d_out, *d_in, n, p, key);
  cuda::residual_dropout_forward<T>(d_rout, *d_res, *d_in, n, p, key);
  cuda::dropout_backward<T>(d_back, *d_in, n, p, key);
  const Vec g_out = download(d_out.p, n), g_rout = download(d_rout.p, n), g_back = download(d_back.p, n);
  // The mask: which elements were dropped, compared element by element.
  std::vector<uint8_t> mask_cpu(n), mask_gpu(n), mask_back(n);
  for (long i = 0; i < n; i++) {
    mask_cpu[i] = out[i] != 0.0f;
    mask_gpu[i] = g_out[i] != 0.0f;
    mask_back[i] = g_back[i] != 0.0f;
  }
  check_bitwise(tag("dropout_forward mask", dt, s), mask_gpu, mask_cpu);
  check_bitwise(tag("dropout_backward mask", dt, s), mask_back, mask_cpu);
  if constexpr (std::is_same_v<T, float>) {  // fp32: same draws, same IEEE ops, same bits
    check_bitwise(tag("dropout_forward values", dt, s), g_out, out);
    check_bitwise(tag("residual_dropout_forward values", dt, s), g_rout, rout);
    check_bitwise(tag("dropout_backward values", dt, s), g_back, back);
  } else {
    check_close(tag("dropout_forward", dt, s), g_out, out, tol);
    check_close(tag("residual_dropout_forward", dt, s), g_rout, rout, tol);
    check_close(tag("dropout_backward", dt, s), g_back, back, tol);
  }
  delete d_in, delete d_res;
}

template <typename T>
void test_embedding(int B, int T_, int H, int vocab, int vocab_start, int vocab_rows, bool with_segments) {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  const std::string s = "B=" + std::to_string(B) + " T=" + std::to_string(T_) + " H=" + std::to_string(H) +
                        " rows=[" + std::to_string(vocab_start) + "," + std::to_string(vocab_start + vocab_rows) +
                        ")" + (with_segments ? " +segments" : "");
  const long N = long(B) * T_;
  // Few distinct ids so that repeats (the race the backward must avoid) are common.
  std::vector<int> tokens = randint(N, 0, vocab), segments = randint(N, 0, 2);
  Vec word = rounded<T>((randn(size_t(vocab_rows) * H))), pos = rounded<T>((randn(size_t(T_) * H)));
  Vec seg = rounded<T>((randn(2 * H))), dout = rounded<T>((randn(size_t(N) * H)));
  Vec out(size_t(N) * H);
  cpu::embedding_forward(out.data(), tokens.data(), segments.data(), word.data(), pos.data(),
                         with_segments ? seg.data() : nullptr, B, T_, H, vocab_start, vocab_rows);
  Dev<int> *d_tok = upload_raw(tokens), *d_seg = upload_raw(segments);
  Dev<T> *d_word = upload<T>(word), *d_pos = upload<T>(pos), *d_segt = upload<T>(seg), *d_dout = upload<T>(dout);
  Dev<T> d_out(out.size());
  cuda::embedding_forward<T>(d_out, *d_tok, *d_seg, *d_word, *d_pos, with_segments ? d_segt->p : nullptr, B, T_, H,
                             vocab_start, vocab_rows);
  check_close(tag("embedding_forward", dt, s), download(d_out.p, out.size()), out, tol);

  Vec dword0 = rounded<T>((randn(word.size(), 0.1f))), dpos0 = rounded<T>((randn(pos.size(), 0.1f)));
  Vec dseg0 = rounded<T>((randn(seg.size(), 0.1f)));
  Vec dword = dword0, dpos = dpos0, dseg = dseg0;
  cpu::embedding_backward(dword.data(), dpos.data(), with_segments ? dseg.data() : nullptr, dout.data(),
                          tokens.data(), segments.data(), B, T_, H, vocab_start, vocab_rows);
  std::vector<std::vector<T>> first;
  for (int run = 0; run < 2; run++) {
    Dev<T> *d_dword = upload<T>(dword0), *d_dpos = upload<T>(dpos0), *d_dseg = upload<T>(dseg0);
    cuda::embedding_backward<T>(*d_dword, *d_dpos, with_segments ? d_dseg->p : nullptr, *d_dout, *d_tok, *d_seg, B,
                                T_, H, vocab_start, vocab_rows);
    if (run == 0) {
      check_close(tag("embedding_backward dword", dt, s), download(d_dword->p, dword.size()), dword, tol);
      check_close(tag("embedding_backward dposition", dt, s), download(d_dpos->p, dpos.size()), dpos, tol);
      if (with_segments)
        check_close(tag("embedding_backward dsegment", dt, s), download(d_dseg->p, dseg.size()), dseg, tol);
      first.push_back(download_raw(d_dword->p, dword.size()));
    } else {
      check_bitwise(tag("embedding_backward dword reproducible", dt, s), download_raw(d_dword->p, dword.size()),
                    first[0]);
    }
    delete d_dword, delete d_dpos, delete d_dseg;
  }
  delete d_tok, delete d_seg, delete d_word, delete d_pos, delete d_segt, delete d_dout;
}

template <typename T>
void test_cross_entropy(long rows, int V) {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  const int ignore = -100;
  const std::string s = "rows=" + std::to_string(rows) + " V=" + std::to_string(V);
  std::vector<int> labels = randint(rows, 0, V);
  for (long r = 0; r < rows; r += 5) labels[r] = ignore;
  Vec logits = rounded<T>((randn(size_t(rows) * V, 3.0f)));
  Dev<int>* d_labels = upload_raw(labels);
  Dev<double> scratch(cuda::cross_entropy_scratch_doubles(rows));
  for (float grad_scale : {0.0f, 1.0f / 37}) {
    const std::string s2 = s + (grad_scale != 0 ? " +grad" : " loss only");
    Vec ref = logits;
    const cpu::CrossEntropyResult r =
        cpu::softmax_cross_entropy(ref.data(), labels.data(), rows, V, ignore, grad_scale);
    Dev<T>* d = upload<T>(logits);
    const cuda::CrossEntropyResult g =
        cuda::softmax_cross_entropy<T>(*d, *d_labels, rows, V, ignore, host_from_float<T>(grad_scale), scratch);
    check_scalar(tag("softmax_cross_entropy loss_sum", dt, s2), g.loss_sum, r.loss_sum, tol);
    report(tag("softmax_cross_entropy count", dt, s2), g.count == r.count,
           "got=" + std::to_string(g.count) + " ref=" + std::to_string(r.count));
    if (grad_scale != 0)
      check_close(tag("softmax_cross_entropy dlogits", dt, s2), download(d->p, ref.size()), ref, tol);
    delete d;
  }

  // Vocabulary-parallel passes on one shard: Vl columns of which `valid` are real, ids from vocab_start.
  const int Vl = V, valid = V - 7, vocab_start = V / 3;
  const std::string sv = "rows=" + std::to_string(rows) + " Vl=" + std::to_string(Vl) + " valid=" +
                         std::to_string(valid) + " start=" + std::to_string(vocab_start);
  std::vector<int> vlabels = randint(rows, 0, vocab_start + valid);  // some before this shard
  for (long r = 3; r < rows; r += 6) vlabels[r] = ignore;
  Dev<int>* d_vlabels = upload_raw(vlabels);
  for (bool with_grad : {false, true}) {
    const float grad_scale = with_grad ? 0.25f : 0.0f;
    const std::string s2 = sv + (with_grad ? " +grad" : " loss only");
    Vec x = logits, row_max(rows), sum_target(2 * rows);
    cpu::vocab_parallel_row_max(x.data(), rows, Vl, valid, row_max.data());
    Dev<T>* d = upload<T>(logits);
    Dev<T> d_max(rows), d_st(2 * rows);
    cuda::vocab_parallel_row_max<T>(*d, rows, Vl, valid, d_max);
    check_close(tag("vocab_parallel_row_max", dt, s2), download(d_max.p, rows), row_max, tol);
    // Continue both from the same (T-rounded) maxima, as the all-reduced value would be.
    round_to<T>(row_max);
    Dev<T>* d_max2 = upload<T>(row_max);
    cpu::vocab_parallel_sum_exp(x.data(), vlabels.data(), rows, Vl, valid, vocab_start, ignore, row_max.data(),
                                sum_target.data(), with_grad);
    cuda::vocab_parallel_sum_exp<T>(*d, *d_vlabels, rows, Vl, valid, vocab_start, ignore, *d_max2, d_st, with_grad);
    check_close(tag("vocab_parallel_sum_exp sums+targets", dt, s2), download(d_st.p, 2 * rows), sum_target, tol);
    if (with_grad) check_close(tag("vocab_parallel_sum_exp exp in place", dt, s2), download(d->p, x.size()), x, tol);
    // Pass 3 from identical inputs on both sides.
    round_to<T>(sum_target), round_to<T>(x);
    Dev<T> *d_st2 = upload<T>(sum_target), *d3 = upload<T>(x);
    const cpu::CrossEntropyResult r = cpu::vocab_parallel_loss(x.data(), vlabels.data(), rows, Vl, valid, vocab_start,
                                                               ignore, row_max.data(), sum_target.data(), grad_scale);
    const cuda::CrossEntropyResult g =
        cuda::vocab_parallel_loss<T>(*d3, *d_vlabels, rows, Vl, valid, vocab_start, ignore, *d_max2, *d_st2,
                                     host_from_float<T>(grad_scale), scratch);
    check_scalar(tag("vocab_parallel_loss loss_sum", dt, s2), g.loss_sum, r.loss_sum, tol);
    report(tag("vocab_parallel_loss count", dt, s2), g.count == r.count,
           "got=" + std::to_string(g.count) + " ref=" + std::to_string(r.count));
    if (with_grad) check_close(tag("vocab_parallel_loss dlogits", dt, s2), download(d3->p, x.size()), x, tol);
    delete d, delete d_max2, delete d_st2, delete d3;
  }
  delete d_labels, delete d_vlabels;
}

template <typename T>
void test_rows(int M, int H, int src_rows) {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  const std::string s = "M=" + std::to_string(M) + " H=" + std::to_string(H);
  std::vector<int> perm(src_rows);
  for (int i = 0; i < src_rows; i++) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int> rows(perm.begin(), perm.begin() + M);  // distinct, as scatter_add_rows requires
  Vec in = rounded<T>((randn(size_t(src_rows) * H))), src = rounded<T>((randn(size_t(M) * H)));
  Vec gathered(size_t(M) * H), dst = in;
  cpu::gather_rows(gathered.data(), in.data(), rows.data(), M, H);
  cpu::scatter_add_rows(dst.data(), src.data(), rows.data(), M, H);
  Dev<int>* d_rows = upload_raw(rows);
  Dev<T> *d_in = upload<T>(in), *d_src = upload<T>(src), *d_dst = upload<T>(in);
  Dev<T> d_g(gathered.size());
  cuda::gather_rows<T>(d_g, *d_in, *d_rows, M, H);
  cuda::scatter_add_rows<T>(*d_dst, *d_src, *d_rows, M, H);
  check_close(tag("gather_rows", dt, s), download(d_g.p, gathered.size()), gathered, tol);
  check_close(tag("scatter_add_rows", dt, s), download(d_dst->p, dst.size()), dst, tol);

  const long n = long(M) * H;
  Vec t_out(n), t_din(n);
  cpu::tanh_forward(t_out.data(), src.data(), n);
  round_to<T>(t_out);  // backward reads the saved output as T holds it
  cpu::tanh_backward(t_din.data(), gathered.data(), t_out.data(), n);
  Dev<T> d_tout(n), d_tdin(n);
  Dev<T>* d_tout_saved = upload<T>(t_out);
  cuda::tanh_forward<T>(d_tout, *d_src, n);
  cuda::tanh_backward<T>(d_tdin, d_g, *d_tout_saved, n);
  check_close(tag("tanh_forward", dt, s), download(d_tout.p, n), t_out, tol);
  check_close(tag("tanh_backward", dt, s), download(d_tdin.p, n), t_din, tol);

  // bias_backward against a plain loop in double (the CPU template lives in linear.h with the
  // OpenBLAS GEMM, which this binary does not link).
  Vec db0 = rounded<T>((randn(H))), db(H);
  for (int o = 0; o < H; o++) {
    double acc = 0;
    for (int m = 0; m < M; m++) acc += src[size_t(m) * H + o];
    db[o] = float(db0[o] + acc);
  }
  Dev<T>* d_db = upload<T>(db0);
  cuda::bias_backward<T>(*d_db, *d_src, M, H);
  check_close(tag("bias_backward", dt, s), download(d_db->p, H), db, tol);
  delete d_rows, delete d_in, delete d_src, delete d_dst, delete d_tout_saved, delete d_db;
}

// ---- optimizers: the loops of cpp/optim/optimizer.cpp, written out plainly ----------------------

struct CpuTensor {
  long offset, numel;
  bool decay;
};

template <typename G>
void test_optimizer(const char* which) {
  const char* dt = dtype_name<G>();
  const double tol = 1e-5;  // fp32 master weights and moments; G only rounds the inputs
  const bool adamw = std::strcmp(which, "adamw") == 0, apex = std::strcmp(which, "lamb-apex") == 0;
  // Sizes: several chunks, a partial chunk, a tiny tensor, an empty one; gaps between tensors.
  const std::vector<long> sizes = {40000, 7, 0, 1000, 70001, 16384};
  std::vector<CpuTensor> cpu_t;
  std::vector<cuda::OptimTensor> dev_t;
  long total = 0;
  for (size_t i = 0; i < sizes.size(); i++) {
    cpu_t.push_back({total, sizes[i], i % 2 == 0});
    dev_t.push_back({total, sizes[i], int32_t(i % 2 == 0), 0});
    total += sizes[i] + 3;  // a gap the kernels must not touch
  }
  const int count = int(sizes.size());
  const int64_t chunks = cuda::plan_optim_chunks(dev_t.data(), count);
  Vec w0 = randn(total, 0.05f), g = randn(total, 0.01f), m0 = randn(total, 0.001f), v0(total);
  for (auto& x : v0) x = std::fabs(randn(1, 1e-4f)[0]);
  round_to<G>(g);
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-6f, wd = 0.01f;
  const int64_t step = 3;
  const float bc1 = 1.0f - float(std::pow(b1, double(step))), bc2 = 1.0f - float(std::pow(b2, double(step)));

  // Host side of optimizer.cpp: the gradient norm and the pre-scale.
  std::vector<double> sq_ref(count, 0.0);
  double gsq = 0;
  for (int t = 0; t < count; t++) {
    for (long i = 0; i < cpu_t[t].numel; i++) sq_ref[t] += double(g[cpu_t[t].offset + i]) * g[cpu_t[t].offset + i];
    gsq += sq_ref[t];
  }
  const double gnorm = std::sqrt(gsq);
  const float max_norm = 0.5f;
  float g_scale = 1.0f;
  if (!adamw && !apex) g_scale = float(1.0 / gnorm);
  else if (gnorm > max_norm) g_scale = float(max_norm / gnorm);
  const cuda::OptimStepArgs args{lr, b1, b2, eps, wd, bc1, bc2, g_scale, apex};

  Vec w = w0, m = m0, v = v0;
  std::vector<double> norms(2 * count, 0.0);
  if (adamw) {
    for (auto& p : cpu_t)
      for (long i = p.offset; i < p.offset + p.numel; i++) {
        const float wdi = p.decay ? wd : 0.0f, gi = g[i] * g_scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const float update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
        w[i] = w[i] * (1 - lr * wdi) - lr * update;
      }
  } else {
    Vec u(total, 0.0f);
    for (int t = 0; t < count; t++) {
      const CpuTensor& p = cpu_t[t];
      for (long i = p.offset; i < p.offset + p.numel; i++) {
        const float wdi = p.decay ? wd : 0.0f, gi = g[i] * g_scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const float mhat = m[i] / bc1, vhat = v[i] / bc2;
        u[i] = (apex ? mhat / (std::sqrt(vhat) + eps) : mhat / std::sqrt(vhat + eps)) + wdi * w[i];
        norms[t] += double(w[i]) * w[i];
        norms[count + t] += double(u[i]) * u[i];
      }
    }
    for (int t = 0; t < count; t++) {
      const double wn = std::sqrt(norms[t]), un = std::sqrt(norms[count + t]);
      const float ratio = (wn > 0 && un > 0) ? float(wn / un) : 1.0f;
      for (long i = cpu_t[t].offset; i < cpu_t[t].offset + cpu_t[t].numel; i++) w[i] -= lr * ratio * u[i];
    }
  }

  Dev<float> *d_w = upload<float>(w0), *d_m = upload<float>(m0), *d_v = upload<float>(v0);
  Dev<G>* d_g = upload<G>(g);
  Dev<G> d_copy(total);
  Dev<cuda::OptimTensor>* d_t = upload_raw(dev_t);
  Dev<double> scratch(cuda::optim_scratch_doubles(chunks)), d_sq(count), d_norms(2 * count);
  cuda::multi_tensor_sum_squares<G>(d_sq, *d_g, *d_t, count, chunks, scratch);
  const std::vector<double> sq = download_raw(d_sq.p, count);
  Vec sqf(sq.begin(), sq.end()), sq_reff(sq_ref.begin(), sq_ref.end());
  check_close(tag("multi_tensor_sum_squares", dt, which), sqf, sq_reff, tol);
  if (adamw) {
    cuda::adamw_update<G>(*d_w, d_copy, *d_m, *d_v, *d_g, *d_t, count, chunks, args);
  } else {
    cuda::lamb_moments<G>(*d_m, *d_v, d_norms, *d_w, *d_g, *d_t, count, chunks, args, scratch);
    const std::vector<double> gn = download_raw(d_norms.p, 2 * count);
    Vec gnf(gn.begin(), gn.end()), nf(norms.begin(), norms.end());
    check_close(tag("lamb_moments per-tensor |w|^2,|u|^2", dt, which), gnf, nf, tol);
    cuda::lamb_update<G>(*d_w, d_copy, *d_m, *d_v, d_norms, *d_t, count, chunks, args);
  }
  // Compare the updates w − w0 (the weights themselves would hide a wrong step), and the moments.
  const Vec gw = download(d_w->p, total);
  Vec dw_gpu(total), dw_cpu(total);
  for (long i = 0; i < total; i++) {
    dw_gpu[i] = gw[i] - w0[i];
    dw_cpu[i] = w[i] - w0[i];
  }
  check_close(tag("optimizer weight update", dt, which), dw_gpu, dw_cpu, tol);
  check_close(tag("optimizer m", dt, which), download(d_m->p, total), m, tol);
  check_close(tag("optimizer v", dt, which), download(d_v->p, total), v, tol);
  Vec copy = download(d_copy.p, total), w_in_tensors(total, 0.0f), copy_in_tensors(total, 0.0f);
  for (auto& p : cpu_t)
    for (long i = p.offset; i < p.offset + p.numel; i++) w_in_tensors[i] = w[i], copy_in_tensors[i] = copy[i];
  check_close(tag("optimizer params_copy", dt, which), copy_in_tensors, w_in_tensors, tolerance<G>());
  delete d_w, delete d_m, delete d_v, delete d_g, delete d_t;
}

// ---- the unified contract: tensor_ops, binary cross-entropy, sampling, DeviceBuffer ---------------

template <typename E>
bool same_raw(const std::vector<E>& a, const std::vector<E>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(E)) == 0;
}

template <typename T>
void test_tensor_ops() {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  const long n = 1001;

  {  // fill, copy, add_into
    Dev<T> d_x(n);
    const float value = host_to_float(host_from_float<T>(0.37f));
    cuda::fill<T>(d_x, n, host_from_float<T>(value));
    check_close(tag("fill", dt, "n=1001"), download(d_x.p, n), Vec(n, value), 0.0);
    Vec src = rounded<T>(randn(n)), dst = rounded<T>(randn(n));
    Dev<T> *d_src = upload<T>(src), *d_dst = upload<T>(dst), d_copy(n);
    cuda::copy<T>(d_copy, *d_src, n);
    check_close(tag("copy", dt, "n=1001"), download(d_copy.p, n), src, 0.0);
    cpu::add_into(dst.data(), src.data(), n);
    cuda::add_into<T>(*d_dst, *d_src, n);
    check_close(tag("add_into", dt, "n=1001"), download(d_dst->p, n), dst, tol);
    delete d_src, delete d_dst;
  }
  for (int O : {7, 768}) {  // add_bias_rows
    const long N = O == 7 ? 1000 : 33;
    const std::string s = "N=" + std::to_string(N) + " O=" + std::to_string(O);
    Vec out = rounded<T>(randn(size_t(N) * O)), b = rounded<T>(randn(O));
    Dev<T> *d_out = upload<T>(out), *d_b = upload<T>(b);
    cpu::add_bias_rows(out.data(), b.data(), N, O);
    cuda::add_bias_rows<T>(*d_out, *d_b, N, O);
    check_close(tag("add_bias_rows", dt, s), download(d_out->p, out.size()), out, tol);
    delete d_out, delete d_b;
  }
  {  // split_pairs / join_pairs: exact moves
    Vec pairs = rounded<T>(randn(2 * n)), first(n), second(n), joined(2 * n);
    cpu::split_pairs(first.data(), second.data(), pairs.data(), n);
    Dev<T>* d_pairs = upload<T>(pairs);
    Dev<T> d_first(n), d_second(n), d_joined(2 * n);
    cuda::split_pairs<T>(d_first, d_second, *d_pairs, n);
    const Vec g_first = download(d_first.p, n), g_second = download(d_second.p, n);
    report(tag("split_pairs", dt, "n=1001"), g_first == first && g_second == second, "exact");
    cpu::join_pairs(joined.data(), first.data(), second.data(), n);
    cuda::join_pairs<T>(d_joined, d_first, d_second, n);
    report(tag("join_pairs", dt, "n=1001"), download(d_joined.p, 2 * n) == joined && joined == pairs, "exact");
    delete d_pairs;
  }
  for (long m : {1000L, 300000L}) {  // squared_error: the sum (synchronising) and the gradient, in place too
    const std::string s = "n=" + std::to_string(m);
    Vec pred = rounded<T>(randn(m)), target = randn(m, 2.0f), grad(m);
    const float gs = host_to_float(host_from_float<T>(0.25f));
    const double ref = cpu::squared_error(pred.data(), target.data(), m, gs, grad.data(), nullptr);
    Dev<T>* d_pred = upload<T>(pred);
    Dev<float>* d_target = upload<float>(target);
    Dev<T> d_grad(m);
    Dev<double> scratch(cuda::loss_scratch_doubles(m));
    const double got = cuda::squared_error<T>(*d_pred, *d_target, m, host_from_float<T>(gs), d_grad, scratch);
    check_scalar(tag("squared_error sum", dt, s), got, ref, 1e-9);
    check_close(tag("squared_error grad", dt, s), download(d_grad.p, m), grad, tol);
    const double again = cuda::squared_error<T>(*d_pred, *d_target, m, host_from_float<T>(gs), d_grad, scratch);
    report(tag("squared_error sum bitwise on a second run", dt, s), std::memcmp(&got, &again, sizeof got) == 0, "");
    const double in_place = cuda::squared_error<T>(*d_pred, *d_target, m, host_from_float<T>(gs), *d_pred, scratch);
    check_scalar(tag("squared_error sum, grad in place of pred", dt, s), in_place, ref, 1e-9);
    check_close(tag("squared_error grad in place of pred", dt, s), download(d_pred->p, m), grad, tol);
    delete d_pred, delete d_target;
  }
  for (long rows : {1000L, 70000L}) {  // argmax_hits: small integer logits, so ties are frequent
    const int C = rows == 1000 ? 7 : 3, ignore = -100;
    const std::string s = "rows=" + std::to_string(rows) + " C=" + std::to_string(C) + " ties, ignored rows";
    const std::vector<int> ints = randint(size_t(rows) * C, -2, 3);
    Vec logits(ints.begin(), ints.end());
    std::vector<int> labels = randint(rows, 0, C);
    for (long r = 0; r < rows; r += 9) labels[r] = ignore;
    const long ref = cpu::argmax_hits(logits.data(), labels.data(), rows, C, ignore, nullptr);
    Dev<T>* d_logits = upload<T>(logits);
    Dev<int>* d_labels = upload_raw(labels);
    Dev<double> scratch(cuda::loss_scratch_doubles(rows));
    const long got = cuda::argmax_hits<T>(*d_logits, *d_labels, rows, C, ignore, scratch);
    report(tag("argmax_hits", dt, s), got == ref && ref > 0,
           "got=" + std::to_string(got) + " ref=" + std::to_string(ref));
    delete d_logits, delete d_labels;
  }
}

// The int and uint8 helpers, the sampling tie-break (float only) and the host transfers.
void test_index_ops() {
  {
    const int count = 1000, stride = 128;
    std::vector<int> ref(count);
    cpu::strided_rows(ref.data(), count, stride);
    Dev<int> d(count);
    cuda::strided_rows(d, count, stride);
    report("strided_rows [int, count=1000 stride=128]", download_raw(d.p, count) == ref, "exact");
  }
  {  // apply_samples: M distinct positions of N
    const int N = 2000, M = 300;
    std::vector<int> tokens = randint(N, 0, 30000), positions(N);
    std::vector<uint8_t> replaced(N);
    for (int i = 0; i < N; i++) replaced[i] = static_cast<uint8_t>(i % 3 == 0);
    for (int i = 0; i < N; i++) positions[i] = i;
    std::shuffle(positions.begin(), positions.end(), rng);
    std::vector<int> rows(positions.begin(), positions.begin() + M), draws = randint(M, 0, 30000), labels = draws;
    for (int m = 0; m < M; m += 2) labels[m] = (labels[m] + 1 + m) % 30000;  // half of them replaced
    Dev<int> *d_tokens = upload_raw(tokens), *d_rows = upload_raw(rows), *d_draws = upload_raw(draws),
             *d_labels = upload_raw(labels);
    Dev<uint8_t>* d_replaced = upload_raw(replaced);
    cpu::apply_samples(tokens.data(), replaced.data(), rows.data(), draws.data(), labels.data(), M);
    cuda::apply_samples(*d_tokens, *d_replaced, *d_rows, *d_draws, *d_labels, M);
    report("apply_samples tokens [int, N=2000 M=300]", download_raw(d_tokens->p, N) == tokens, "exact");
    report("apply_samples replaced [uint8, N=2000 M=300]", download_raw(d_replaced->p, N) == replaced, "exact");
    delete d_tokens, delete d_rows, delete d_draws, delete d_labels, delete d_replaced;
  }
  {  // sample_choice_encode / decode (float): this rank holds the best on some rows, some rows hold none
    const long rows = 1000;
    Vec best = randn(rows), choice = best;
    std::vector<int> index = randint(rows, 0, 50257);
    for (long r = 0; r < rows; r += 3) choice[r] -= 0.5f;  // another rank holds the best
    for (long r = 1; r < rows; r += 7) index[r] = -1;      // no real column here
    Dev<float> *d_best = upload<float>(best), *d_choice = upload<float>(choice);
    Dev<int>* d_index = upload_raw(index);
    cpu::sample_choice_encode(choice.data(), best.data(), index.data(), rows);
    cuda::sample_choice_encode<float>(*d_choice, *d_best, *d_index, rows);
    const Vec got = download(d_choice->p, rows);
    report("sample_choice_encode [fp32, rows=1000]", same_raw(got, choice), "bitwise");
    // Decode a reduced choice: every row finite (the max over ranks of −id, one rank always holds it).
    Vec reduced(rows);
    for (long r = 0; r < rows; r++) reduced[r] = -static_cast<float>((r * 37) % 50257);
    std::vector<int> ids(rows);
    cpu::sample_choice_decode(ids.data(), reduced.data(), rows);
    Dev<float>* d_reduced = upload<float>(reduced);
    cuda::sample_choice_decode<float>(*d_index, *d_reduced, rows);
    report("sample_choice_decode [fp32, rows=1000]", download_raw(d_index->p, rows) == ids, "exact");
    delete d_best, delete d_choice, delete d_index, delete d_reduced;
  }
  {  // upload / download on a stream of their own
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cuda::set_current_stream(stream);
    const std::vector<int> host = randint(5000, -1000000, 1000000);
    Dev<int> d(host.size());
    cuda::upload(d.p, host.data(), static_cast<long>(host.size()));
    std::vector<int> back(host.size(), 0);
    cuda::download(back.data(), d.p, static_cast<long>(back.size()));  // synchronises `stream`
    report("upload + download round trip [int, n=5000, own stream]", back == host, "exact");
    cuda::set_current_stream(nullptr);
    CUDA_CHECK(cudaStreamDestroy(stream));
  }
}

template <typename T>
void test_binary_cross_entropy(long rows, bool with_mask) {
  const char* dt = dtype_name<T>();
  const double tol = tolerance<T>();
  const std::string s = "rows=" + std::to_string(rows) + (with_mask ? " mask" : " no mask");
  Vec logits = rounded<T>(randn(rows, 3.0f));
  for (long r = 0; r < rows; r += 50) logits[r] = 0.0f;  // x = 0 predicts 0
  std::vector<uint8_t> labels(rows), mask(rows);
  const std::vector<int> bits = randint(2 * rows, 0, 4);
  for (long r = 0; r < rows; r++) {
    labels[r] = static_cast<uint8_t>(bits[r] & 1);
    mask[r] = static_cast<uint8_t>(bits[rows + r] != 0);  // 3 in 4 rows count
  }
  Dev<T>* d_logits = upload<T>(logits);
  Dev<uint8_t> *d_labels = upload_raw(labels), *d_mask = upload_raw(mask);
  Dev<double> scratch(cuda::loss_scratch_doubles(rows));
  for (float grad_scale : {0.0f, 1.0f / 64}) {
    const std::string s2 = s + (grad_scale != 0 ? " +grad" : " loss only");
    Vec grad(rows, 7.0f);
    const cpu::BinaryResult r = cpu::binary_cross_entropy(logits.data(), labels.data(),
                                                          with_mask ? mask.data() : nullptr, rows, grad_scale,
                                                          grad.data());
    Dev<T>* d_grad = upload<T>(Vec(rows, 7.0f));  // untouched when grad_scale = 0
    const cuda::BinaryResult g =
        cuda::binary_cross_entropy<T>(*d_logits, *d_labels, with_mask ? d_mask->p : nullptr, rows,
                                      host_from_float<T>(grad_scale), *d_grad, scratch);
    check_scalar(tag("binary_cross_entropy loss_sum", dt, s2), g.loss_sum, r.loss_sum, 1e-9);
    const bool counts = g.count == r.count && g.correct == r.correct && g.positives == r.positives &&
                        g.true_positives == r.true_positives;
    report(tag("binary_cross_entropy count/correct/positives/tp", dt, s2), counts,
           "got=" + std::to_string(g.count) + "/" + std::to_string(g.correct) + "/" + std::to_string(g.positives) +
               "/" + std::to_string(g.true_positives) + " ref=" + std::to_string(r.count) + "/" +
               std::to_string(r.correct) + "/" + std::to_string(r.positives) + "/" +
               std::to_string(r.true_positives));
    check_close(tag("binary_cross_entropy grad", dt, s2), download(d_grad->p, rows), grad, tol);
    delete d_grad;
  }
  delete d_logits, delete d_labels, delete d_mask;
}

// Identical chosen ids row by row (the noise is the CPU's bit for bit), best within tolerance.
template <typename T>
void test_gumbel(long rows, int V, int valid, int v0) {
  const char* dt = dtype_name<T>();
  const std::string s = "rows=" + std::to_string(rows) + " V=" + std::to_string(V) + " valid=" +
                        std::to_string(valid) + " v0=" + std::to_string(v0);
  Vec logits = rounded<T>(randn(size_t(rows) * V, 2.0f));
  std::vector<uint64_t> keys(rows), offsets(rows);
  for (long r = 0; r < rows; r++) {
    keys[r] = rng();
    offsets[r] = rng() >> 20;
  }
  Vec best(rows);
  std::vector<int> index(rows);
  cpu::gumbel_argmax_rows(logits.data(), rows, V, valid, v0, keys.data(), offsets.data(), best.data(), index.data());
  Dev<T>* d_logits = upload<T>(logits);
  Dev<uint64_t> *d_keys = upload_raw(keys), *d_offsets = upload_raw(offsets);
  Dev<T> d_best(rows);
  Dev<int> d_index(rows);
  cuda::gumbel_argmax_rows<T>(*d_logits, rows, V, valid, v0, *d_keys, *d_offsets, d_best, d_index);
  const std::vector<int> got = download_raw(d_index.p, rows);
  long differ = 0;
  for (long r = 0; r < rows; r++) differ += got[r] != index[r];
  report(tag("gumbel_argmax_rows index", dt, s), differ == 0,
         "differing rows: " + std::to_string(differ) + " of " + std::to_string(rows));
  if (valid > 0) check_close(tag("gumbel_argmax_rows best", dt, s), download(d_best.p, rows), rounded<T>(best),
                             std::is_same_v<T, float> ? 0.0 : tolerance<T>());
  delete d_logits, delete d_keys, delete d_offsets;
}

template <typename T>
void test_device_buffer() {
  const char* dt = dtype_name<T>();
  std::vector<cuda::DeviceBuffer<T>> buffers;
  buffers.resize(3);  // default construction, then moves on growth
  report(tag("DeviceBuffer default: empty, null", dt), buffers[1].empty() && !buffers[1].data(), "");
  buffers[0].assign(1000, host_from_float<T>(0.0f));
  Vec zeros = download(buffers[0].data(), 1000);
  report(tag("DeviceBuffer assign(1000, 0)", dt), buffers[0].size() == 1000 && zeros == Vec(1000, 0.0f), "memset");
  const T* before = buffers[0].data();
  buffers[0].assign(1000, host_from_float<T>(1.5f));  // refill, same size: same storage
  report(tag("DeviceBuffer refill assign(1000, 1.5)", dt),
         buffers[0].data() == before && download(buffers[0].data(), 1000) == Vec(1000, 1.5f), "fill kernel");
  buffers[1].assign(4097, host_from_float<T>(-2.0f));  // another size
  report(tag("DeviceBuffer assign(4097, -2)", dt),
         buffers[1].size() == 4097 && download(buffers[1].data(), 4097) == Vec(4097, -2.0f), "");
  const T* moved_ptr = buffers[1].data();
  buffers.resize(40);  // reallocation moves every buffer
  cuda::DeviceBuffer<T> taken(std::move(buffers[1]));
  report(tag("DeviceBuffer move construction", dt),
         taken.data() == moved_ptr && taken.size() == 4097 && buffers[1].empty() && !buffers[1].data() &&
             download(taken.data(), 4097) == Vec(4097, -2.0f),
         "");
  buffers[2] = std::move(taken);
  report(tag("DeviceBuffer move assignment", dt),
         buffers[2].data() == moved_ptr && buffers[2].size() == 4097 && taken.empty(), "");
  buffers[2].assign(0, host_from_float<T>(1.0f));
  report(tag("DeviceBuffer assign(0, ...)", dt), buffers[2].empty() && !buffers[2].data(), "");
}

void test_device_buffer_oom() {
  cuda::DeviceBuffer<uint8_t> huge;
  std::string code = "none", message;
  try {
    huge.assign(size_t(1) << 50, 0);  // a petabyte
  } catch (const Error& e) {
    code = e.code();
    message = e.what();
  }
  report("DeviceBuffer assign(2^50 bytes) throws ERR_CUDA_OOM", code == "ERR_CUDA_OOM" && huge.empty(),
         code + ": " + message.substr(0, 120));
  // The failure is not sticky: allocations and launches still work.
  cuda::DeviceBuffer<uint64_t> keys;
  keys.assign(10, 7);
  report("DeviceBuffer after OOM: assign(10, 7) [uint64]", download_raw(keys.data(), 10) == std::vector<uint64_t>(10, 7),
         "");
}

template <typename T>
void run_all() {
  test_layernorm<T>(67, 768);  // packed path
  test_layernorm<T>(33, 100);  // element path (100 is not a whole number of bf16 packs)
  test_gelu<T>(1 << 14);
  test_gelu<T>(1001);
  test_dropout<T>(1 << 14, 0.1f);
  test_dropout<T>(999, 0.5f);
  test_dropout<T>(1024, 0.0f);
  test_embedding<T>(4, 32, 96, 50, 0, 50, true);
  test_embedding<T>(3, 40, 200, 120, 40, 50, false);  // vocabulary-parallel shard: rows [40, 90)
  test_cross_entropy<T>(61, 1000);
  test_cross_entropy<T>(9, 50257);
  test_rows<T>(37, 136, 80);
  test_optimizer<T>("adamw");
  test_optimizer<T>("lamb");
  test_optimizer<T>("lamb-apex");
  test_tensor_ops<T>();
  test_binary_cross_entropy<T>(1000, true);
  test_binary_cross_entropy<T>(70000, false);
  test_gumbel<T>(37, 1000, 1000, 0);
  test_gumbel<T>(5, 50304, 50257, 0);     // GPT-2's padded vocabulary
  test_gumbel<T>(9, 512, 400, 1024);      // a tensor-parallel shard
  test_gumbel<T>(3, 64, 0, 0);            // no real column: index −1
  test_device_buffer<T>();
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device 0: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  try {
    run_all<float>();
    run_all<bf16>();
    test_index_ops();
    test_device_buffer_oom();
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    failed++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
