// buffer.h — DeviceBuffer<T>: the CUDA build's kernels::Buffer<T> (the CPU build's is
// std::vector<T>). An owning array in device memory with the part of std::vector's interface the
// model uses: default construction, move (it lives in std::vector<DeviceBuffer<T>>), assign(n,
// value), data(), size(), empty(). No copy: a device copy is explicit (cuda::copy). Plain C++.
#pragma once
#include <atomic>
#include <cstddef>  // size_t
#include <cstdint>  // int64_t
#include <cstring>  // std::memcmp
#include <utility>  // std::exchange

#include "tensor_ops.cuh"  // fill (instantiated for float, bf16, double, int, uint8_t, uint64_t)

namespace paratrain::cuda {

// Bytes held by all device buffers of this process now (the engine's memory report).
inline std::atomic<int64_t>& buffer_bytes() {
  static std::atomic<int64_t> bytes{0};
  return bytes;
}

// cudaMalloc of `bytes` (nullptr for 0); throws Error("ERR_CUDA_OOM", ...) naming the request,
// the device's free/total memory and what to change when the device is full.
void* device_alloc(size_t bytes);
// cudaFree that never throws (destructors); a failure is reported on stderr.
void device_free(void* p) noexcept;
// cudaMemsetAsync(p, 0, bytes) on the current stream.
void device_zero(void* p, size_t bytes);

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  // Exactly n elements, all `value` (asynchronous on the current stream). The old storage is freed
  // first, so a buffer that grows does not hold both at once.
  void assign(size_t n, T value) {
    if (n != size_) {
      release();
      // An impossible size (n·sizeof(T) overflows) asks for everything: the OOM error names it.
      data_ = static_cast<T*>(device_alloc(n > static_cast<size_t>(-1) / sizeof(T) ? static_cast<size_t>(-1)
                                                                                  : n * sizeof(T)));
      size_ = n;
      buffer_bytes() += static_cast<int64_t>(n * sizeof(T));
    }
    if (n == 0) return;
    const T zero{};
    if (std::memcmp(&value, &zero, sizeof(T)) == 0) device_zero(data_, n * sizeof(T));  // all-zero bits
    else fill(data_, static_cast<long>(n), value);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  void release() noexcept {
    device_free(data_);
    buffer_bytes() -= static_cast<int64_t>(size_ * sizeof(T));
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace paratrain::cuda
