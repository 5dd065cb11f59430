// common.cu — the current-stream slot and the CUDA error path of common.cuh.
#include <string>

#include "common.cuh"

namespace paratrain::cuda {

namespace {
thread_local cudaStream_t t_current_stream = nullptr;  // nullptr: the legacy default stream
}

cudaStream_t current_stream() { return t_current_stream; }
void set_current_stream(cudaStream_t stream) { t_current_stream = stream; }

void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  throw Error("ERR_CUDA", std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                              cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace paratrain::cuda
