// sync.h — how work on other threads waits for the compute stream, and which device a thread
// uses. The CPU computes synchronously on the calling thread, so both are no-ops here; the CUDA
// twin (cuda/sync.h) records and waits on CUDA events and sets each thread's device.
#pragma once
#include "../../common/error.h"     // Error
#include "../matmul_precision.h"   // MatmulPrecision

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

// The calling thread issues its kernels on a stream of its own from now on (the communication
// thread: its work must neither queue behind nor hold up the compute stream), and waits for them.
// The CPU runs each kernel to completion on the calling thread: nothing to do.
inline void use_own_stream() {}
inline void synchronize_thread() {}

// The calling thread's GEMM precision: the CPU kernels have only fp32 (the TypeScript config
// refuses the others first; this is the engine's own guard).
inline void set_matmul_precision(MatmulPrecision p) {
  if (p != MatmulPrecision::Fp32)
    throw Error("ERR_CONFIG", std::string("precision: ") + precision_name(p) +
                                  " needs the CUDA engine; the CPU engine computes in fp32");
}

}  // namespace paratrain::cpu
