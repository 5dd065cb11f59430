// buffer.cu — device allocation behind DeviceBuffer (buffer.h): the out-of-memory error, and a
// free that never throws.
#include <cstdio>  // std::fprintf
#include <string>

#include "buffer.h"
#include "common.cuh"  // CUDA_CHECK, current_stream

namespace paratrain::cuda {

namespace {
std::string mib(size_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }
}  // namespace

void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaSuccess) return p;
  (void)cudaGetLastError();  // not sticky, but cleared so the next launch check does not report it
  if (err != cudaErrorMemoryAllocation) throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
  size_t free_bytes = 0, total_bytes = 0;
  std::string memory = "unknown";
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
    memory = mib(free_bytes) + " free of " + mib(total_bytes);
  else
    (void)cudaGetLastError();
  int device = -1;
  (void)cudaGetDevice(&device);
  throw Error("ERR_CUDA_OOM", "out of GPU memory on device " + std::to_string(device) + ": asked for " +
                                  std::to_string(bytes) + " bytes (" + mib(bytes) + "), " + memory +
                                  ". Use a smaller micro-batch or seq_len, or more tensor parallelism.");
}

void device_free(void* p) noexcept {
  if (!p) return;
  const cudaError_t err = cudaFree(p);
  if (err != cudaSuccess) {
    std::fprintf(stderr, "paratrain: cudaFree failed: %s (%s)\n", cudaGetErrorName(err), cudaGetErrorString(err));
    (void)cudaGetLastError();
  }
}

void device_zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, current_stream()));
}

}  // namespace paratrain::cuda
