// host_staged.h — a Communicator over kernel memory built on one over host memory: each float
// collective copies its data to a host buffer, runs the inner collective there and copies the
// result back. How the CUDA engine runs tensor/data parallelism over the libzmq rings (several
// processes on one GPU, or nodes without NCCL); the double all-reduce is on host memory already
// and passes straight through. The staging buffers grow to the largest message once (the first
// step) and are reused after that.
#pragma once
#include <memory>   // std::unique_ptr
#include <utility>  // std::move
#include <vector>

#include "../kernels/backend.h"  // kernels::upload, kernels::download
#include "communicator.h"        // Communicator

namespace paratrain {

class HostStagedCommunicator final : public Communicator {
 public:
  explicit HostStagedCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }

  void all_reduce_sum(float* data, size_t n) override {
    in_place(data, n, [&](float* h) { inner_->all_reduce_sum(h, n); });
  }
  void all_reduce_sum(double* data, size_t n) override { inner_->all_reduce_sum(data, n); }
  void all_reduce_max(float* data, size_t n) override {
    in_place(data, n, [&](float* h) { inner_->all_reduce_max(h, n); });
  }
  void all_gather(const float* send, float* recv, size_t n) override {
    const size_t total = n * static_cast<size_t>(size());
    float* hs = stage_in(a_, send, n);
    float* hr = room(b_, total);
    inner_->all_gather(hs, hr, n);
    kernels::upload(recv, hr, static_cast<long>(total));
  }
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override {
    const size_t total = n * static_cast<size_t>(size());
    float* hs = stage_in(a_, send, total);
    float* hr = room(b_, n);
    inner_->reduce_scatter_sum(hs, hr, n);
    kernels::upload(recv, hr, static_cast<long>(n));
  }
  void broadcast(float* data, size_t n, int root) override {
    in_place(data, n, [&](float* h) { inner_->broadcast(h, n, root); });
  }
  void barrier() override { inner_->barrier(); }

 private:
  // data[0, n) down to the host, `op` on the host copy, and back.
  template <typename Op>
  void in_place(float* data, size_t n, Op op) {
    float* h = stage_in(a_, data, n);
    op(h);
    kernels::upload(data, h, static_cast<long>(n));
  }
  static float* room(std::vector<float>& buf, size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
  static float* stage_in(std::vector<float>& buf, const float* src, size_t n) {
    float* h = room(buf, n);
    kernels::download(h, src, static_cast<long>(n));
    return h;
  }
  std::unique_ptr<Communicator> inner_;
  std::vector<float> a_, b_;  // host staging
};

}  // namespace paratrain
