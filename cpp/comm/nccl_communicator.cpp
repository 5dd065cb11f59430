// nccl_communicator.cpp — see nccl_communicator.h. Written against the documented NCCL 2.x API
// (nccl.h: ncclCommInitRankConfig with ncclConfig_t.blocking = 0, ncclCommGetAsyncError,
// ncclCommAbort, ncclCommFinalize); this machine has no NCCL headers, so the body is compiled only
// where <nccl.h> exists (and CMake adds this file only when PARATRAIN_NCCL_FOUND).
#include "nccl_communicator.h"

#if __has_include(<nccl.h>)
#include <cuda_runtime.h>  // cudaSetDevice, cudaStreamCreateWithFlags, cudaEvent*
#include <nccl.h>          // ncclComm_t, ncclCommInitRankConfig, ncclAllReduce, ...

#include <chrono>   // steady_clock
#include <cstring>  // std::memcpy
#include <thread>   // std::this_thread::sleep_for

#include "../common/error.h"          // paratrain::Error
#include "../kernels/cuda/common.cuh"  // current_stream

namespace paratrain {
namespace {

using Clock = std::chrono::steady_clock;

void check_cuda(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw Error("ERR_CUDA", what + ": " + cudaGetErrorString(e));
}

void pause_briefly() { std::this_thread::sleep_for(std::chrono::microseconds(50)); }

}  // namespace

std::string NcclCommunicator::new_unique_id() {
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) throw Error("ERR_NCCL", std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
  return std::string(id.internal, sizeof id.internal);
}

NcclCommunicator::NcclCommunicator(int rank, int size, const std::string& unique_id, int device, int timeout_ms,
                                   const std::string& name)
    : rank_(rank), size_(size), device_(device), timeout_ms_(timeout_ms), name_(name) {
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("ERR_ARGUMENT", name + ": rank " + std::to_string(rank) + " of " + std::to_string(size));
  if (unique_id.size() != NCCL_UNIQUE_ID_BYTES)
    throw Error("ERR_ARGUMENT", name + ": the NCCL unique id must be " + std::to_string(NCCL_UNIQUE_ID_BYTES) +
                                    " bytes, got " + std::to_string(unique_id.size()));
  check_cuda(cudaSetDevice(device), where("init") + ": cudaSetDevice(" + std::to_string(device) + ")");
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), where("init") + ": stream");
  check_cuda(cudaEventCreateWithFlags(&compute_ready_, cudaEventDisableTiming), where("init") + ": event");
  check_cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), where("init") + ": event");
  check_cuda(cudaMalloc(&barrier_scratch_, sizeof(float)), where("init") + ": scratch");
  check_cuda(cudaMemset(barrier_scratch_, 0, sizeof(float)), where("init") + ": scratch");

  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), NCCL_UNIQUE_ID_BYTES);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // every call returns at once; we poll with a deadline
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  comm_ = comm;
  if (r != ncclSuccess && r != ncclInProgress) {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    broken_ = true;
    throw Error("ERR_NCCL", where("init") + ": ncclCommInitRankConfig: " + ncclGetErrorString(r));
  }
  wait_nccl_idle("init");  // a peer that never joins is ERR_COLLECTIVE_TIMEOUT here
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) {
    bool clean = false;
    if (!broken_) {
      const ncclResult_t r = ncclCommFinalize(comm_);  // flushes our work; completes asynchronously
      clean = r == ncclSuccess || r == ncclInProgress;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    ncclResult_t state = ncclInProgress;
    while (clean) {
      if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
        clean = false;
        break;
      }
      if (state == ncclSuccess) break;
      if (Clock::now() > deadline) {
        clean = false;
        break;
      }
      pause_briefly();
    }
    if (clean)
      ncclCommDestroy(comm_);
    else
      ncclCommAbort(comm_);
  }
  if (barrier_scratch_) cudaFree(barrier_scratch_);
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
    ncclCommAbort(comm_);  // frees the communicator and stops its kernels, so nothing waits on a dead peer
    comm_ = nullptr;
  }
  throw Error(code, where(op) + ": " + what);
}

void NcclCommunicator::check_async(const char* op) {
  ncclResult_t state = ncclSuccess;
  const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
  if (r != ncclSuccess) fail(op, "ERR_NCCL", std::string("ncclCommGetAsyncError: ") + ncclGetErrorString(r));
  if (state != ncclSuccess && state != ncclInProgress)
    fail(op, "ERR_NCCL", std::string(ncclGetErrorString(state)) + ": " + ncclGetLastError(comm_));
}

void NcclCommunicator::wait_nccl_idle(const char* op) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
    if (r != ncclSuccess) fail(op, "ERR_NCCL", std::string("ncclCommGetAsyncError: ") + ncclGetErrorString(r));
    if (state == ncclSuccess) return;
    if (state != ncclInProgress)
      fail(op, "ERR_NCCL", std::string(ncclGetErrorString(state)) + ": " + ncclGetLastError(comm_));
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
  // 2. enqueue on our stream; a non-blocking communicator may answer ncclInProgress
  const ncclResult_t r = enqueue(static_cast<ncclComm_t>(comm_), stream_);
  if (r != ncclSuccess && r != ncclInProgress) fail(op, "ERR_NCCL", ncclGetErrorString(r));
  wait_nccl_idle(op);
  check_cuda(cudaEventRecord(done_, stream_), where(op) + ": record");
  // 3. complete before returning (the interface is synchronous); compute then follows it too
  wait_done(op);
  check_cuda(cudaStreamWaitEvent(cuda::current_stream(), done_, 0), where(op) + ": wait");
}

void NcclCommunicator::all_reduce_sum(float* data, size_t n) {
  collective("all-reduce", [&](ncclComm_t c, cudaStream_t s) {
    return ncclAllReduce(data, data, n, ncclFloat32, ncclSum, c, s);
  });
}
void NcclCommunicator::all_reduce_sum(double* data, size_t n) {
  collective("all-reduce", [&](ncclComm_t c, cudaStream_t s) {
    return ncclAllReduce(data, data, n, ncclFloat64, ncclSum, c, s);
  });
}
void NcclCommunicator::all_reduce_max(float* data, size_t n) {
  collective("all-reduce-max", [&](ncclComm_t c, cudaStream_t s) {
    return ncclAllReduce(data, data, n, ncclFloat32, ncclMax, c, s);
  });
}
void NcclCommunicator::all_gather(const float* send, float* recv, size_t n_per_rank) {
  collective("all-gather", [&](ncclComm_t c, cudaStream_t s) {
    return ncclAllGather(send, recv, n_per_rank, ncclFloat32, c, s);
  });
}
void NcclCommunicator::reduce_scatter_sum(const float* send, float* recv, size_t n_per_rank) {
  collective("reduce-scatter", [&](ncclComm_t c, cudaStream_t s) {
    return ncclReduceScatter(send, recv, n_per_rank, ncclFloat32, ncclSum, c, s);
  });
}
void NcclCommunicator::broadcast(float* data, size_t n, int root) {
  if (root < 0 || root >= size_) throw Error("ERR_ARGUMENT", where("broadcast") + ": root " + std::to_string(root));
  collective("broadcast", [&](ncclComm_t c, cudaStream_t s) {
    return ncclBroadcast(data, data, n, ncclFloat32, root, c, s);
  });
}
void NcclCommunicator::barrier() {
  collective("barrier", [&](ncclComm_t c, cudaStream_t s) {
    return ncclAllReduce(barrier_scratch_, barrier_scratch_, 1, ncclFloat32, ncclSum, c, s);
  });
}

}  // namespace paratrain

#else
// No <nccl.h> here: nothing to compile. CMake adds this file only when PARATRAIN_NCCL_FOUND.
#endif
