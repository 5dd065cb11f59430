// nccl_communicator.h — NcclCommunicator: the GPU data plane behind the engine's Communicator
// interface (communicator.h). One NCCL communicator per group (tensor-parallel, data-parallel),
// created from the 128-byte ncclUniqueId that rank 0 makes (new_unique_id()) and the coordinator
// hands to every rank as opaque bytes. The float collectives take device pointers, the double
// all-reduce host memory (communicator.h). NCCL itself is bound at run time (nccl_api.h: dlopen),
// so this compiles wherever the CUDA build does; a missing libnccl is ERR_NCCL_LOAD at first use.
//
// Streams and ordering. The communicator owns a non-blocking CUDA stream. Each collective
//   1. makes its stream wait on the compute work before it: on the event given to after(), or else
//      on an event it records on the calling thread's current_stream() (common.cuh);
//   2. enqueues the NCCL call on its own stream and records `done`;
//   3. returns when `done` has completed (the interface is synchronous, like the libzmq ring), having
//      also made the calling thread's current stream wait on `done`.
// So the data-parallel reducer thread can all-reduce a bucket while the compute thread keeps running
// backward: the compute thread records an event after the bucket's last gradient kernel and passes
// it (after(event)) with the bucket; only the comm stream waits for it.
//
// Never hangs: the communicator is non-blocking (ncclConfig_t.blocking = 0). Every wait (init,
// enqueue, completion, finalize) polls ncclCommGetAsyncError and a deadline of timeout_ms; on an
// asynchronous error it throws ERR_NCCL, on the deadline ERR_COLLECTIVE_TIMEOUT — after
// ncclCommAbort, so a dead peer costs one timeout, not the job. After a failure every call throws
// (the group must be rebuilt, as with the ring).
//
// Testing note: the GPU machine has one GPU, and NCCL refuses two ranks on one device, so NCCL is
// tested there at world size 1; multi-process TP/DP on that machine runs over the CPU (libzmq)
// communicator, staging through host memory.
#pragma once
#include <cuda_runtime_api.h>  // cudaStream_t, cudaEvent_t

#include <cstddef>  // size_t
#include <string>

#include "communicator.h"  // Communicator
#include "nccl_api.h"      // nccl::Comm

namespace paratrain {

class NcclCommunicator final : public Communicator {
 public:
  // unique_id: exactly NCCL_UNIQUE_ID_BYTES (128) bytes from new_unique_id() on rank 0.
  // device: the CUDA device of this rank (set on the calling thread). name: for error messages.
  NcclCommunicator(int rank, int size, const std::string& unique_id, int device, int timeout_ms,
                   const std::string& name = "nccl");
  ~NcclCommunicator() override;  // finalize + destroy within timeout_ms, else abort
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  static std::string new_unique_id();  // ncclGetUniqueId, as 128 bytes

  cudaStream_t stream() const { return stream_; }
  // The next collective waits on `ready` (recorded by the caller on its compute stream) instead of
  // recording one on the calling thread's current stream.
  void after(cudaEvent_t ready) { pending_ready_ = ready; }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_sum(float* data, size_t n) override;
  void all_reduce_sum(double* data, size_t n) override;
  void all_reduce_max(float* data, size_t n) override;
  void all_gather(const float* send, float* recv, size_t n_per_rank) override;          // recv: size()·n
  void reduce_scatter_sum(const float* send, float* recv, size_t n_per_rank) override;  // send: size()·n
  void broadcast(float* data, size_t n, int root) override;
  void barrier() override;
  bool reads_device_memory() const override { return true; }
  void after_event(void* native_event) override { after(static_cast<cudaEvent_t>(native_event)); }

 private:
  template <typename Enqueue>
  void collective(const char* op, Enqueue enqueue);
  void wait_nccl_idle(const char* op);      // until the communicator is no longer ncclInProgress
  void wait_done(const char* op);           // until `done_` completes
  void check_async(const char* op);         // throws ERR_NCCL on an asynchronous error
  [[noreturn]] void fail(const char* op, const char* code, const std::string& what);
  std::string where(const char* op) const;  // "<name> all-reduce (rank r of n)"

  nccl::Comm comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_ready_ = nullptr, done_ = nullptr;
  cudaEvent_t pending_ready_ = nullptr;
  float* barrier_scratch_ = nullptr;  // one device float
  double* double_scratch_ = nullptr;  // the double all-reduce's device copy
  size_t double_capacity_ = 0;
  int rank_, size_, device_, timeout_ms_;
  std::string name_;
  bool broken_ = false;
};

}  // namespace paratrain
