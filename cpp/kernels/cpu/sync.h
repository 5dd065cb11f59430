// sync.h — how work on other threads waits for the compute stream, and which device a thread
// uses. The CPU computes synchronously on the calling thread, so both are no-ops here; the CUDA
// twin (cuda/sync.h) records and waits on CUDA events and sets each thread's device.
#pragma once

namespace paratrain::cpu {

// A point in the compute stream: record() marks it (after the work it follows was issued), wait()
// blocks the calling thread until that work is done.
class StreamEvent {
 public:
  void record() {}
  void wait() const {}
  void* native() const { return nullptr; }  // what a device-memory communicator would wait on
};

// Every thread that runs kernels or collectives calls this first.
inline void bind_thread() {}

}  // namespace paratrain::cpu
