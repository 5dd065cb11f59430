// nccl_communicator.cpp — see nccl_communicator.h. NCCL 2.x through nccl_api.h (bound with dlopen
// at first use): a non-blocking communicator (NCCL_COMM_BLOCKING=0), ncclCommGetAsyncError polled
// against a deadline, ncclCommAbort on failure, ncclCommFinalize + ncclCommDestroy at the end.
#include "nccl_communicator.h"

#include <cuda_runtime.h>  // cudaSetDevice, cudaStreamCreateWithFlags, cudaEvent*
#include <cstdlib>         // setenv

#include <chrono>   // steady_clock
#include <cstring>  // std::memcpy
#include <thread>   // std::this_thread::sleep_for

#include "../common/error.h"          // paratrain::Error
#include "../kernels/cuda/common.cuh"  // current_stream
#include "nccl_api.h"                  // nccl::api

namespace paratrain {
namespace {

using Clock = std::chrono::steady_clock;

void check_cuda(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw Error("ERR_CUDA", what + ": " + cudaGetErrorString(e));
}

void pause_briefly() { std::this_thread::sleep_for(std::chrono::microseconds(50)); }

}  // namespace

std::string NcclCommunicator::new_unique_id() {
  const nccl::Api& api = nccl::api();
  nccl::UniqueId id;
  const nccl::Result r = api.GetUniqueId(&id);
  if (r != nccl::Success) throw Error("ERR_NCCL", std::string("ncclGetUniqueId: ") + api.GetErrorString(r));
  return std::string(id.internal, sizeof id.internal);
}

NcclCommunicator::NcclCommunicator(int rank, int size, const std::string& unique_id, int device, int timeout_ms,
                                   const std::string& name)
    : rank_(rank), size_(size), device_(device), timeout_ms_(timeout_ms), name_(name) {
  const nccl::Api& api = nccl::api();  // ERR_NCCL_LOAD first, before any device state is made
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("ERR_ARGUMENT", name + ": rank " + std::to_string(rank) + " of " + std::to_string(size));
  if (unique_id.size() != nccl::kUniqueIdBytes)
    throw Error("ERR_ARGUMENT", name + ": the NCCL unique id must be " + std::to_string(nccl::kUniqueIdBytes) +
                                    " bytes, got " + std::to_string(unique_id.size()));
  check_cuda(cudaSetDevice(device), where("init") + ": cudaSetDevice(" + std::to_string(device) + ")");
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), where("init") + ": stream");
  check_cuda(cudaEventCreateWithFlags(&compute_ready_, cudaEventDisableTiming), where("init") + ": event");
  check_cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), where("init") + ": event");
  check_cuda(cudaMalloc(&barrier_scratch_, sizeof(float)), where("init") + ": scratch");
  check_cuda(cudaMemset(barrier_scratch_, 0, sizeof(float)), where("init") + ": scratch");

  nccl::UniqueId id;
  std::memcpy(id.internal, unique_id.data(), nccl::kUniqueIdBytes);
  // Every call returns at once and we poll with a deadline (a user's explicit setting wins).
  setenv("NCCL_COMM_BLOCKING", "0", 0);
  nccl::Comm comm = nullptr;
  const nccl::Result r = api.CommInitRank(&comm, size, id, rank);
  comm_ = comm;
  if (r != nccl::Success && r != nccl::InProgress) {
    if (comm_) api.CommAbort(comm_);
    comm_ = nullptr;
    broken_ = true;
    throw Error("ERR_NCCL", where("init") + ": ncclCommInitRank: " + api.GetErrorString(r));
  }
  wait_nccl_idle("init");  // a peer that never joins is ERR_COLLECTIVE_TIMEOUT here
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) {
    bool clean = false;
    if (!broken_) {
      const nccl::Result r = nccl::api().CommFinalize(comm_);  // flushes our work; completes asynchronously
      clean = r == nccl::Success || r == nccl::InProgress;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    nccl::Result state = nccl::InProgress;
    while (clean) {
      if (nccl::api().CommGetAsyncError(comm_, &state) != nccl::Success ||
          (state != nccl::Success && state != nccl::InProgress)) {
        clean = false;
        break;
      }
      if (state == nccl::Success) break;
      if (Clock::now() > deadline) {
        clean = false;
        break;
      }
      pause_briefly();
    }
    if (clean)
      nccl::api().CommDestroy(comm_);
    else
      nccl::api().CommAbort(comm_);
  }
  if (barrier_scratch_) cudaFree(barrier_scratch_);
  if (double_scratch_) cudaFree(double_scratch_);
  if (done_) cudaEventDestroy(done_);
  if (compute_ready_) cudaEventDestroy(compute_ready_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::string NcclCommunicator::where(const char* op) const {
  return name_ + " " + op + " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ", device " +
         std::to_string(device_) + ")";
}

void NcclCommunicator::fail(const char* op, const char* code, const std::string& what) {
  broken_ = true;
  if (comm_) {
    nccl::api().CommAbort(comm_);  // frees the communicator and stops its kernels, so nothing waits on a dead peer
    comm_ = nullptr;
  }
  throw Error(code, where(op) + ": " + what);
}

void NcclCommunicator::check_async(const char* op) {
  nccl::Result state = nccl::Success;
  const nccl::Result r = nccl::api().CommGetAsyncError(comm_, &state);
  if (r != nccl::Success)
    fail(op, "ERR_NCCL", std::string("ncclCommGetAsyncError: ") + nccl::api().GetErrorString(r));
  if (state != nccl::Success && state != nccl::InProgress)
    fail(op, "ERR_NCCL", std::string(nccl::api().GetErrorString(state)) + ": " + nccl::api().GetLastError(comm_));
}

void NcclCommunicator::wait_nccl_idle(const char* op) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    nccl::Result state = nccl::Success;
    const nccl::Result r = nccl::api().CommGetAsyncError(comm_, &state);
    if (r != nccl::Success)
      fail(op, "ERR_NCCL", std::string("ncclCommGetAsyncError: ") + nccl::api().GetErrorString(r));
    if (state == nccl::Success) return;
    if (state != nccl::InProgress)
      fail(op, "ERR_NCCL", std::string(nccl::api().GetErrorString(state)) + ": " + nccl::api().GetLastError(comm_));
    if (Clock::now() > deadline)
      fail(op, "ERR_COLLECTIVE_TIMEOUT", "no progress within " + std::to_string(timeout_ms_) + " ms (a peer is gone?)");
    pause_briefly();
  }
}

void NcclCommunicator::wait_done(const char* op) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    const cudaError_t e = cudaEventQuery(done_);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) fail(op, "ERR_CUDA", std::string("cudaEventQuery: ") + cudaGetErrorString(e));
    check_async(op);
    if (Clock::now() > deadline)
      fail(op, "ERR_COLLECTIVE_TIMEOUT", "not complete within " + std::to_string(timeout_ms_) + " ms (a peer is gone?)");
    pause_briefly();
  }
}

template <typename Enqueue>
void NcclCommunicator::collective(const char* op, Enqueue enqueue) {
  if (broken_ || !comm_) throw Error("ERR_NCCL", where(op) + ": the communicator failed earlier; rebuild the group");
  check_cuda(cudaSetDevice(device_), where(op) + ": cudaSetDevice");
  // 1. order after the compute work that produced the data
  cudaEvent_t ready = pending_ready_;
  pending_ready_ = nullptr;
  if (!ready) {
    check_cuda(cudaEventRecord(compute_ready_, cuda::current_stream()), where(op) + ": record");
    ready = compute_ready_;
  }
  check_cuda(cudaStreamWaitEvent(stream_, ready, 0), where(op) + ": wait");
  // 2. enqueue on our stream; a non-blocking communicator may answer nccl::InProgress
  const nccl::Result r = enqueue(static_cast<nccl::Comm>(comm_), stream_);
  if (r != nccl::Success && r != nccl::InProgress) fail(op, "ERR_NCCL", nccl::api().GetErrorString(r));
  wait_nccl_idle(op);
  check_cuda(cudaEventRecord(done_, stream_), where(op) + ": record");
  // 3. complete before returning (the interface is synchronous); compute then follows it too
  wait_done(op);
  check_cuda(cudaStreamWaitEvent(cuda::current_stream(), done_, 0), where(op) + ": wait");
}

void NcclCommunicator::all_reduce_sum(float* data, size_t n) {
  collective("all-reduce", [&](nccl::Comm c, cudaStream_t s) {
    return nccl::api().AllReduce(data, data, n, nccl::Float32, nccl::Sum, c, s);
  });
}
// The double all-reduce takes host memory (a step's figures and norms: communicator.h): staged
// through a device buffer that grows once to the largest count.
void NcclCommunicator::all_reduce_sum(double* data, size_t n) {
  if (n > double_capacity_) {
    if (double_scratch_) cudaFree(double_scratch_);
    double_scratch_ = nullptr;
    check_cuda(cudaMalloc(&double_scratch_, n * sizeof(double)), where("all-reduce") + ": scratch");
    double_capacity_ = n;
  }
  check_cuda(cudaMemcpyAsync(double_scratch_, data, n * sizeof(double), cudaMemcpyHostToDevice, cuda::current_stream()),
             where("all-reduce") + ": upload");
  collective("all-reduce", [&](nccl::Comm c, cudaStream_t s) {
    return nccl::api().AllReduce(double_scratch_, double_scratch_, n, nccl::Float64, nccl::Sum, c, s);
  });
  check_cuda(cudaMemcpyAsync(data, double_scratch_, n * sizeof(double), cudaMemcpyDeviceToHost, cuda::current_stream()),
             where("all-reduce") + ": download");
  check_cuda(cudaStreamSynchronize(cuda::current_stream()), where("all-reduce") + ": download");
}
void NcclCommunicator::all_reduce_max(float* data, size_t n) {
  collective("all-reduce-max", [&](nccl::Comm c, cudaStream_t s) {
    return nccl::api().AllReduce(data, data, n, nccl::Float32, nccl::Max, c, s);
  });
}
void NcclCommunicator::all_gather(const float* send, float* recv, size_t n_per_rank) {
  collective("all-gather", [&](nccl::Comm c, cudaStream_t s) {
    return nccl::api().AllGather(send, recv, n_per_rank, nccl::Float32, c, s);
  });
}
void NcclCommunicator::reduce_scatter_sum(const float* send, float* recv, size_t n_per_rank) {
  collective("reduce-scatter", [&](nccl::Comm c, cudaStream_t s) {
    return nccl::api().ReduceScatter(send, recv, n_per_rank, nccl::Float32, nccl::Sum, c, s);
  });
}
void NcclCommunicator::broadcast(float* data, size_t n, int root) {
  if (root < 0 || root >= size_) throw Error("ERR_ARGUMENT", where("broadcast") + ": root " + std::to_string(root));
  collective("broadcast", [&](nccl::Comm c, cudaStream_t s) {
    return nccl::api().Broadcast(data, data, n, nccl::Float32, root, c, s);
  });
}
void NcclCommunicator::barrier() {
  collective("barrier", [&](nccl::Comm c, cudaStream_t s) {
    return nccl::api().AllReduce(barrier_scratch_, barrier_scratch_, 1, nccl::Float32, nccl::Sum, c, s);
  });
}

}  // namespace paratrain

