// kernel_tests.cpp — every CPU kernel's backward against central finite differences, with the
// kernels instantiated in double. For a kernel y = f(x) and a fixed random G, the scalar
// L = Σ G ⊙ f(x) has ∂L/∂x = backward(G); we compare that with (L(x+h) − L(x−h)) / 2h.
// Prints one line per check and "N passed, N failed"; exits non-zero on any failure.
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../kernels/cpu/attention.h"
#include "../kernels/cpu/cross_entropy.h"
#include "../kernels/cpu/dropout.h"
#include "../kernels/cpu/embedding.h"
#include "../kernels/cpu/fast_math.h"
#include "../kernels/cpu/gelu.h"
#include "../kernels/cpu/layernorm.h"
#include "../kernels/cpu/linear.h"
#include "../kernels/cpu/rows.h"
#include "../kernels/cpu/sampling.h"

using namespace paratrain;
using namespace paratrain::cpu;
using Vec = std::vector<double>;

static std::mt19937_64 rng(1234);
static Vec randn(size_t n, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
static double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

static int passed = 0, failed = 0;

// Compares `analytic` with the finite-difference gradient of loss() w.r.t. every element of x.
static void check(const std::string& name, Vec& x, const Vec& analytic, const std::function<double()>& loss,
                  double tol = 1e-6) {
  const double h = 1e-6;
  double num_sq = 0, diff_sq = 0;
  for (size_t i = 0; i < x.size(); i++) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss();
    x[i] = keep - h;
    const double down = loss();
    x[i] = keep;
    const double numeric = (up - down) / (2 * h);
    num_sq += numeric * numeric;
    diff_sq += (numeric - analytic[i]) * (numeric - analytic[i]);
  }
  const double rel = std::sqrt(diff_sq) / std::max(std::sqrt(num_sq), 1e-30);
  const bool ok = rel < tol && num_sq > 0;
  (ok ? passed : failed)++;
  std::printf("%s %-40s rel_err=%.3e\n", ok ? "PASS" : "FAIL", name.c_str(), rel);
}

static void test_linear() {
  const int N = 5, I = 7, O = 6;
  Vec x = randn(N * I), W = randn(O * I), b = randn(O), G = randn(N * O), y(N * O);
  auto loss = [&] { linear_forward(y.data(), x.data(), W.data(), b.data(), N, I, O); return dot(G, y); };
  Vec dx(N * I), dW(O * I, 0.0), db(O, 0.0);
  linear_backward(dx.data(), dW.data(), db.data(), G.data(), x.data(), W.data(), N, I, O, false);
  check("linear d_input", x, dx, loss);
  check("linear d_weight", W, dW, loss);
  check("linear d_bias", b, db, loss);
  // accumulate_din adds to what is there
  Vec acc(N * I, 1.0);
  linear_backward(acc.data(), dW.data(), db.data(), G.data(), x.data(), W.data(), N, I, O, true);
  Vec expect(N * I);
  for (int i = 0; i < N * I; i++) expect[i] = dx[i] + 1.0;
  double err = 0;
  for (int i = 0; i < N * I; i++) err = std::max(err, std::fabs(acc[i] - expect[i]));
  (err < 1e-12 ? passed : failed)++;
  std::printf("%s %-40s max_err=%.3e\n", err < 1e-12 ? "PASS" : "FAIL", "linear accumulate d_input", err);
}

static void test_layernorm() {
  const int N = 4, C = 9;
  Vec x = randn(N * C), w = randn(C), b = randn(C), G = randn(N * C), y(N * C), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5);
    return dot(G, y);
  };
  loss();
  Vec dx(N * C), dw(C, 0.0), db(C, 0.0);
  layernorm_backward(dx.data(), dw.data(), db.data(), G.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C,
                     false);
  check("layernorm d_input", x, dx, loss);
  check("layernorm d_weight", w, dw, loss);
  check("layernorm d_bias", b, db, loss);
}

static void test_gelu(GeluForm form, const char* name) {
  const long n = 33;
  Vec x = randn(n, 2.0), G = randn(n), y(n), dx(n);
  auto loss = [&] { gelu_forward(y.data(), x.data(), n, form); return dot(G, y); };
  gelu_backward(dx.data(), G.data(), x.data(), n, form);
  check(name, x, dx, loss);
}

// The MLP's fused GELU forms (the CUDA twin's cuBLASLt epilogues): the forward is the unfused pair
// exactly, and the down projection's input gradient through the GELU matches finite differences.
static void test_linear_gelu() {
  const int N = 4, I = 8, O = 8;
  Vec x = randn(N * I), W = randn(O * I), b = randn(O), out(N * O), pre(N * O), y(N * O);
  linear_gelu_forward(out.data(), pre.data(), x.data(), W.data(), b.data(), N, I, O);
  linear_forward(y.data(), x.data(), W.data(), b.data(), N, I, O);
  gelu_forward(y.data(), y.data(), static_cast<long>(N) * O, GeluForm::Tanh);
  (out == y ? passed : failed)++;
  std::printf("%s %-40s exact\n", out == y ? "PASS" : "FAIL", "linear_gelu_forward = linear + gelu");
  // Down projection: z[N,O] = gelu(h)[N,I]·Wdᵀ; ∂(G·z)/∂h = (G·Wd) ⊙ gelu'(h).
  Vec h = randn(N * I, 2.0), Wd = randn(O * I), G = randn(N * O), act(N * I), z(N * O), dh(N * I);
  auto loss = [&] {
    gelu_forward(act.data(), h.data(), static_cast<long>(N) * I, GeluForm::Tanh);
    linear_forward(z.data(), act.data(), Wd.data(), static_cast<const double*>(nullptr), N, I, O);
    return dot(G, z);
  };
  linear_backward_input_dgelu(dh.data(), G.data(), Wd.data(), h.data(), N, I, O);
  check("linear_backward_input_dgelu d_pre", h, dh, loss);
}

static void test_attention(bool causal, bool padding, float dropout, const char* name) {
  const int B = 2, T = 5, heads = 2, d = 3, C = heads * d;
  std::vector<uint8_t> mask(B * T, 1);
  if (padding) mask[1 * T + 4] = mask[1 * T + 3] = 0;  // two padding keys in sequence 1
  AttentionShape s{B, T, heads, d, causal, padding ? mask.data() : nullptr, dropout, rng_key(7, 3, 11)};
  Vec qkv = randn(B * T * 3 * C), G = randn(B * T * C), ctx(B * T * C), probs(B * heads * T * T);
  Vec scratch(2 * T * T * 64);  // enough for any OpenMP team size here
  auto loss = [&] {
    attention_forward(ctx.data(), probs.data(), qkv.data(), s, scratch.data());
    return dot(G, ctx);
  };
  loss();
  Vec dqkv(qkv.size());
  attention_backward(dqkv.data(), G.data(), qkv.data(), ctx.data(), probs.data(), s, scratch.data());
  check(name, qkv, dqkv, loss);
}

static void test_cross_entropy() {
  const int rows = 6, V = 11;
  Vec logits = randn(rows * V, 3.0);
  std::vector<int> labels = {3, -100, 0, 10, 5, -100};
  auto loss = [&] {
    Vec copy = logits;
    auto r = softmax_cross_entropy(copy.data(), labels.data(), rows, V, -100, 0.0);
    return r.loss_sum / r.count;  // mean over counted rows, as the model uses it
  };
  Vec grad = logits;
  auto r = softmax_cross_entropy(grad.data(), labels.data(), rows, V, -100, 1.0 / 4);
  check("cross_entropy d_logits (ignore index)", logits, grad, loss);
  (r.count == 4 ? passed : failed)++;
  std::printf("%s %-40s count=%ld\n", r.count == 4 ? "PASS" : "FAIL", "cross_entropy ignore count", r.count);
}

static void test_binary_cross_entropy() {
  const int rows = 9;
  Vec logits = randn(rows, 3.0);
  const std::vector<uint8_t> labels = {1, 0, 0, 1, 1, 0, 1, 0, 0};
  const std::vector<uint8_t> mask = {1, 1, 0, 1, 1, 1, 0, 1, 1};  // 7 counted rows
  auto loss = [&] {
    auto r = binary_cross_entropy(logits.data(), labels.data(), mask.data(), rows, 0.0, static_cast<double*>(nullptr));
    return r.loss_sum / r.count;  // mean over counted rows, as the model uses it
  };
  Vec grad(rows, -1.0);
  const auto r = binary_cross_entropy(logits.data(), labels.data(), mask.data(), rows, 1.0 / 7, grad.data());
  check("binary_cross_entropy d_logits (mask)", logits, grad, loss);
  // The value against −[y·log σ(x) + (1−y)·log(1−σ(x))] written out, and the counts.
  double want = 0;
  long correct = 0, positives = 0, hits = 0;
  for (int i = 0; i < rows; i++) {
    if (!mask[i]) continue;
    const double p = 1 / (1 + std::exp(-logits[i]));
    want -= labels[i] ? std::log(p) : std::log(1 - p);
    correct += (logits[i] > 0) == (labels[i] == 1);
    positives += labels[i];
    hits += logits[i] > 0 && labels[i];
  }
  const bool ok = std::fabs(r.loss_sum - want) < 1e-12 * std::max(1.0, want) && r.count == 7 && r.correct == correct &&
                  r.positives == positives && r.true_positives == hits && grad[2] == 0 && grad[6] == 0;
  (ok ? passed : failed)++;
  std::printf("%s %-40s loss_err=%.2e count=%ld\n", ok ? "PASS" : "FAIL", "binary_cross_entropy value, counts", std::fabs(r.loss_sum - want), r.count);
}

// Gumbel-max draws follow softmax(logits), and a vocabulary split in two shards picks exactly the
// token the whole row picks (what makes ELECTRA's sampling layout-invariant).
static void test_gumbel_sampling() {
  const int V = 7, draws = 200000;
  const Vec logits = {0.5, -1.0, 2.0, 0.0, 1.0, -0.5, 0.25};
  std::vector<uint64_t> keys(draws), offsets(draws, 0);
  for (int d = 0; d < draws; d++) keys[d] = rng_key(99, static_cast<uint64_t>(d), 2);
  Vec rows(static_cast<size_t>(draws) * V);
  for (int d = 0; d < draws; d++)
    for (int v = 0; v < V; v++) rows[static_cast<size_t>(d) * V + v] = logits[v];
  Vec best(draws);
  std::vector<int> index(draws);
  gumbel_argmax_rows(rows.data(), draws, V, V, 0, keys.data(), offsets.data(), best.data(), index.data());
  Vec freq(V, 0.0);
  for (int i : index) freq[i] += 1.0 / draws;
  double z = 0;
  for (double x : logits) z += std::exp(x);
  double worst = 0;  // in standard errors of a binomial proportion
  for (int v = 0; v < V; v++) {
    const double p = std::exp(logits[v]) / z;
    worst = std::max(worst, std::fabs(freq[v] - p) / std::sqrt(p * (1 - p) / draws));
  }
  bool ok = worst < 5;
  std::printf("%s %-40s worst=%.2f sigma\n", ok ? "PASS" : "FAIL", "gumbel sampling follows softmax", worst);
  (ok ? passed : failed)++;
  // Shards [0,4) and [4,7): the larger perturbed logit of the two is the whole row's choice.
  Vec b0(draws), b1(draws);
  std::vector<int> i0(draws), i1(draws);
  Vec lo(static_cast<size_t>(draws) * 4), hi(static_cast<size_t>(draws) * 3);
  for (int d = 0; d < draws; d++) {
    for (int v = 0; v < 4; v++) lo[static_cast<size_t>(d) * 4 + v] = logits[v];
    for (int v = 0; v < 3; v++) hi[static_cast<size_t>(d) * 3 + v] = logits[4 + v];
  }
  gumbel_argmax_rows(lo.data(), draws, 4, 4, 0, keys.data(), offsets.data(), b0.data(), i0.data());
  gumbel_argmax_rows(hi.data(), draws, 3, 3, 4, keys.data(), offsets.data(), b1.data(), i1.data());
  long mismatches = 0;
  for (int d = 0; d < draws; d++) mismatches += (b1[d] > b0[d] ? i1[d] : i0[d]) != index[d];
  ok = mismatches == 0;
  std::printf("%s %-40s mismatches=%ld\n", ok ? "PASS" : "FAIL", "gumbel sampling over two shards", mismatches);
  (ok ? passed : failed)++;
}

static void test_embedding() {
  const int B = 2, T = 4, H = 5, V = 7;
  std::vector<int> tokens = {1, 3, 3, 6, 0, 1, 1, 2}, segments = {0, 0, 1, 1, 0, 1, 1, 1};
  Vec word = randn(V * H), pos = randn(T * H), seg = randn(2 * H), G = randn(B * T * H), y(B * T * H);
  auto loss = [&] {
    embedding_forward(y.data(), tokens.data(), segments.data(), word.data(), pos.data(), seg.data(), B, T, H);
    return dot(G, y);
  };
  Vec dword(V * H, 0.0), dpos(T * H, 0.0), dseg(2 * H, 0.0);
  embedding_backward(dword.data(), dpos.data(), dseg.data(), G.data(), tokens.data(), segments.data(), B, T, H);
  check("embedding d_word", word, dword, loss);
  check("embedding d_position", pos, dpos, loss);
  check("embedding d_segment", seg, dseg, loss);
}

static void test_dropout() {
  const long n = 200;
  const uint64_t key = rng_key(3, 9, 5);
  Vec x = randn(n), G = randn(n), y(n), r = randn(n), dx(n);
  auto loss = [&] { residual_dropout_forward(y.data(), r.data(), x.data(), n, 0.3f, key); return dot(G, y); };
  dropout_backward(dx.data(), G.data(), n, 0.3f, key);
  check("residual dropout d_input", x, dx, loss);
  long zeros = 0;
  dropout_forward(y.data(), x.data(), n, 0.3f, key);
  for (long i = 0; i < n; i++) zeros += y[i] == 0;
  const bool ok = zeros > 30 && zeros < 90;  // ≈ 60 expected
  (ok ? passed : failed)++;
  std::printf("%s %-40s dropped=%ld/200\n", ok ? "PASS" : "FAIL", "dropout rate near p", zeros);
}

static void test_tanh_and_rows() {
  const long n = 12;
  Vec x = randn(n), G = randn(n), y(n), dx(n);
  auto loss = [&] { tanh_forward(y.data(), x.data(), n); return dot(G, y); };
  loss();
  tanh_backward(dx.data(), G.data(), y.data(), n);
  check("tanh d_input", x, dx, loss);
  const int H = 3, M = 2;
  std::vector<int> rows = {3, 1};
  Vec src = randn(5 * H), Gm = randn(M * H), out(M * H), dsrc(5 * H, 0.0);
  auto gl = [&] { gather_rows(out.data(), src.data(), rows.data(), M, H); return dot(Gm, out); };
  scatter_add_rows(dsrc.data(), Gm.data(), rows.data(), M, H);
  check("gather_rows / scatter_add_rows", src, dsrc, gl);
}

// The float GEMM path the model runs (OpenBLAS's sgemm for whatever core type it selected) against a
// naive double product: all transpose combinations, beta 0 and 1, and leading dimensions wider
// than the matrix (as attention uses them).
static void test_sgemm() {
  const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 64}, {128, 96, 256}, {300, 257, 129}};
  for (const auto& sh : shapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (float beta : {0.0f, 1.0f}) {
          const int M = sh[0], N = sh[1], K = sh[2], pad = 3;
          const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
          const Vec Ad = randn(static_cast<size_t>(ta ? K : M) * lda), Bd = randn(static_cast<size_t>(tb ? N : K) * ldb);
          const Vec Cd = randn(static_cast<size_t>(M) * ldc);
          std::vector<float> A(Ad.begin(), Ad.end()), B(Bd.begin(), Bd.end()), C(Cd.begin(), Cd.end());
          gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          double diff = 0, ref_sq = 0;
          for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
              double acc = 0;
              for (int k = 0; k < K; k++)
                acc += double(A[ta ? k * lda + i : i * lda + k]) * double(B[tb ? j * ldb + k : k * ldb + j]);
              const double ref = 0.5 * acc + beta * double(float(Cd[i * ldc + j]));
              diff += (ref - C[i * ldc + j]) * (ref - C[i * ldc + j]);
              ref_sq += ref * ref;
            }
          const double rel = std::sqrt(diff / std::max(ref_sq, 1e-30));
          const bool ok = rel < 1e-5;
          (ok ? passed : failed)++;
          if (!ok || (M == 128 && ta == 0 && tb == 1 && beta == 0.0f))
            std::printf("%s sgemm %dx%dx%d ta=%d tb=%d beta=%g rel_err=%.3e\n", ok ? "PASS" : "FAIL", M, N, K, ta, tb,
                        beta, rel);
        }
}

// The vectorisable float exp/erf/tanh against libm over their useful ranges.
static void test_fast_math() {
  double exp_rel = 0, erf_abs = 0, tanh_abs = 0;
  for (int i = 0; i <= 200000; i++) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / 200000.0f;
    exp_rel = std::max(exp_rel, std::fabs(fast_exp(x) - std::exp(double(x))) / std::exp(double(x)));
    const float y = -6.0f + 12.0f * static_cast<float>(i) / 200000.0f;
    erf_abs = std::max(erf_abs, std::fabs(fast_erf(y) - std::erf(double(y))));
    tanh_abs = std::max(tanh_abs, std::fabs(fast_tanh(y) - std::tanh(double(y))));
  }
  // ln over the range Gumbel noise takes it (the 24-bit uniforms and their logarithms), and beyond.
  double log_err = 0;
  for (int i = 0; i < 252000; i++) {  // every binade of the normal floats, 1000 points each
    const float x = std::ldexp(1.0f + static_cast<float>(i % 1000) / 1000.0f, i / 1000 - 126);
    const double ref = std::log(double(x));
    log_err = std::max(log_err, std::fabs(fast_log(x) - ref) / std::max(std::fabs(ref), 1.0));
  }
  const bool ok = exp_rel < 5e-7 && erf_abs < 1e-6 && tanh_abs < 5e-7 && log_err < 3e-7;
  (ok ? passed : failed)++;
  std::printf("%s %-40s exp_rel=%.2e erf_abs=%.2e tanh_abs=%.2e log=%.2e\n", ok ? "PASS" : "FAIL",
              "fast exp/erf/tanh/log (float)", exp_rel, erf_abs, tanh_abs, log_err);
}

int main() {
  test_fast_math();
  std::printf("OpenBLAS core: %s\n", openblas_get_corename());
  test_sgemm();
  test_linear();
  test_layernorm();
  test_gelu(GeluForm::Erf, "gelu (erf) d_input");
  test_gelu(GeluForm::Tanh, "gelu (tanh) d_input");
  test_linear_gelu();
  test_attention(false, true, 0.0f, "attention padding mask d_qkv");
  test_attention(true, false, 0.0f, "attention causal d_qkv");
  test_attention(false, true, 0.25f, "attention padding + dropout d_qkv");
  test_cross_entropy();
  test_binary_cross_entropy();
  test_gumbel_sampling();
  test_embedding();
  test_dropout();
  test_tanh_and_rows();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
