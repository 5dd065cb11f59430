// cuda_nccl_tests.cpp — NcclCommunicator on the one GPU of the device machine (NCCL refuses two
// ranks on one device, so the group is world size 1): every collective on fresh random data, the
// host-memory double all-reduce, a peer that never joins (ERR_COLLECTIVE_TIMEOUT, not a hang), and a
// malformed unique id. Exit 0 all passed, 1 a failure, 77 without a CUDA device or without libnccl.
#include <cuda_runtime.h>  // cudaMalloc (typed), cudaMemcpy

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../comm/nccl_api.h"
#include "../comm/nccl_communicator.h"
#include "../common/error.h"

using namespace paratrain;

static int passed = 0, failed = 0;
static void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  (ok ? passed : failed)++;
}

static std::vector<float> randn(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

// Device copy of `host`, the collective `op` on it, and the result back.
template <typename Op>
static std::vector<float> on_device(const std::vector<float>& host, size_t out_n, Op op) {
  float *in = nullptr, *out = nullptr;
  cudaMalloc(&in, host.size() * sizeof(float));
  cudaMalloc(&out, out_n * sizeof(float));
  cudaMemcpy(in, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  op(in, out);
  std::vector<float> got(out_n);
  cudaMemcpy(got.data(), out, out_n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(in);
  cudaFree(out);
  return got;
}

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  try {
    int version = 0;
    nccl::api().GetVersion(&version);
    std::printf("NCCL %d\n", version);
  } catch (const Error& e) {
    std::printf("skipped: %s: %s\n", e.code().c_str(), e.what());
    return 77;
  }
  const size_t n = 1 << 20;
  const std::vector<float> x = randn(n, 1);
  try {
    NcclCommunicator comm(0, 1, NcclCommunicator::new_unique_id(), 0, 20000, "test");
    const auto same = [&](const std::vector<float>& got, const char* what) {
      check(got.size() == x.size() && std::memcmp(got.data(), x.data(), x.size() * sizeof(float)) == 0,
            std::string(what) + " over one rank is the identity, bit for bit");
    };
    std::vector<float> got(n);
    float* d = nullptr;
    cudaMalloc(&d, n * sizeof(float));
    const auto run = [&](auto op) {
      cudaMemcpy(d, x.data(), n * sizeof(float), cudaMemcpyHostToDevice);
      op(d);
      cudaMemcpy(got.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
      return got;
    };
    same(run([&](float* p) { comm.all_reduce_sum(p, n); }), "all_reduce_sum");
    same(run([&](float* p) { comm.all_reduce_max(p, n); }), "all_reduce_max");
    same(run([&](float* p) { comm.broadcast(p, n, 0); }), "broadcast");
    same(on_device(x, n, [&](float* in, float* out) { comm.all_gather(in, out, n); }), "all_gather");
    same(on_device(x, n, [&](float* in, float* out) { comm.reduce_scatter_sum(in, out, n); }), "reduce_scatter_sum");
    std::vector<double> figures = {1.5, -2.25, 1e300};
    comm.all_reduce_sum(figures.data(), figures.size());  // host memory
    check(figures[0] == 1.5 && figures[1] == -2.25 && figures[2] == 1e300, "the double all-reduce on host memory");
    comm.barrier();
    check(true, "barrier");
    cudaFree(d);
  } catch (const Error& e) {
    check(false, std::string("world size 1: ") + e.code() + ": " + e.what());
  }
  // A group of two whose second rank never comes: the init must fail within the timeout.
  const auto t0 = std::chrono::steady_clock::now();
  std::string code = "none";
  try {
    NcclCommunicator lonely(0, 2, NcclCommunicator::new_unique_id(), 0, 3000, "lonely");
  } catch (const Error& e) {
    code = e.code();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  check(code == "ERR_COLLECTIVE_TIMEOUT" && s < 30, "a peer that never joins: " + code + " after " + std::to_string(s) + " s");
  try {
    NcclCommunicator bad(0, 1, "short", 0, 1000, "bad");
    check(false, "a malformed unique id is refused");
  } catch (const Error& e) {
    check(std::string(e.code()) == "ERR_ARGUMENT", std::string("a malformed unique id: ") + e.code());
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
