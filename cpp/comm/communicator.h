// communicator.h — the collective operations of one process group (a rank's tensor- or
// data-parallel group). Backends: libzmq rings (zmq_ring.h) and NCCL (nccl_communicator.h); a rank
// that trains alone uses SingleProcessCommunicator, where every collective is the identity.
// Where the data lives: float collectives act on kernel memory (activations, gradients: device
// memory in the CUDA build — NCCL reads it directly, a libzmq ring stages it through the host);
// the double all-reduce acts on host memory (a step's figures, norms and flags).
#pragma once
#include <cstddef>  // size_t

namespace paratrain {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  virtual void all_reduce_sum(double* data, size_t n) = 0;
  virtual void all_reduce_max(float* data, size_t n) = 0;
  // The engine calls only the all-reduces today. The four below stay for the planned callers:
  // ZeRO's sharded optimizer (reduce-scatter the gradients, all-gather the parameters), sequence
  // parallelism (all-gather / reduce-scatter along the sequence) and resharding tools (broadcast,
  // barrier); cpp/tests/comm_tests.cpp checks every one on every backend, the benchmark uses barrier.
  virtual void all_gather(const float* send, float* recv, size_t n_per_rank) = 0;      // recv: size()·n
  virtual void reduce_scatter_sum(const float* send, float* recv, size_t n_per_rank) = 0;  // send: size()·n
  virtual void broadcast(float* data, size_t n, int root) = 0;
  virtual void barrier() = 0;
  // True when the float collectives read device memory themselves (NCCL); false: host memory
  // (the libzmq ring), which the CUDA engine stages through (host_staged.h).
  virtual bool reads_device_memory() const { return false; }
  // Device-memory communicators: the next collective waits (on the device) for this event of the
  // compute stream (a cudaEvent_t) instead of for everything issued so far. Others ignore it.
  virtual void after_event(void* /*native_event*/) {}
};

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  void all_reduce_max(float*, size_t) override {}
  void all_gather(const float* send, float* recv, size_t n) override { copy(send, recv, n); }
  void reduce_scatter_sum(const float* send, float* recv, size_t n) override { copy(send, recv, n); }
  void broadcast(float*, size_t, int) override {}
  void barrier() override {}

 private:
  static void copy(const float* src, float* dst, size_t n) {
    if (src != dst)
      for (size_t i = 0; i < n; i++) dst[i] = src[i];
  }
};

}  // namespace paratrain
