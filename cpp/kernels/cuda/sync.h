// sync.h — the CUDA twin of cpu/sync.h: a point in the compute stream that another thread waits
// for (a CUDA event), and the device every thread of the process uses.
// Plain C++ over the runtime API (no kernels), so engine code includes it.
#pragma once
#include <cuda_runtime_api.h>  // cudaEvent_t, cudaSetDevice

#include "common.cuh"  // current_stream, CUDA_CHECK

namespace paratrain::cuda {

// The device of this process's engine (set once, before the engine is made, from the local rank
// and CUDA_VISIBLE_DEVICES); every thread that runs kernels or collectives binds to it.
inline int& engine_device() {
  static int device = 0;
  return device;
}
inline void bind_thread() { CUDA_CHECK(cudaSetDevice(engine_device())); }

// The calling thread's kernels go to a non-blocking stream of its own, made on first use and
// destroyed when the thread ends. The data-parallel communication thread uses one: on the compute
// thread's stream (the legacy default stream) its bucket scaling would queue behind the rest of
// backward, and waiting there for NCCL's `done` would hold backward up behind the all-reduce.
inline void use_own_stream() {
  struct Owned {
    cudaStream_t stream = nullptr;
    ~Owned() {
      if (stream) cudaStreamDestroy(stream);
    }
  };
  thread_local Owned owned;
  if (!owned.stream) CUDA_CHECK(cudaStreamCreateWithFlags(&owned.stream, cudaStreamNonBlocking));
  set_current_stream(owned.stream);
}
// Blocks until the work the calling thread issued on its current stream has finished.
inline void synchronize_thread() { CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

// record() marks the current stream's position; wait() blocks the calling thread until the work
// issued before it has finished (the communication thread then reads the gradients it covers).
// Created without timing, the cheapest kind; made once and reused step after step.
class StreamEvent {
 public:
  StreamEvent() { CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~StreamEvent() { cudaEventDestroy(event_); }
  StreamEvent(const StreamEvent&) = delete;
  StreamEvent& operator=(const StreamEvent&) = delete;
  void record() { CUDA_CHECK(cudaEventRecord(event_, current_stream())); }
  void wait() const { CUDA_CHECK(cudaEventSynchronize(event_)); }
  // The GPU-side wait: work issued on `stream` after this call starts once the event has passed
  // (NCCL's stream waits for the compute stream without blocking the host).
  void wait_on(cudaStream_t stream) const { CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }
  // The event itself, for a communicator that waits on the device (Communicator::after_event).
  void* native() const { return event_; }

 private:
  cudaEvent_t event_{};
};

}  // namespace paratrain::cuda
