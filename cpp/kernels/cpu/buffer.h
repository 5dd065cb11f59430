// buffer.h — the CPU build's kernel buffer: a std::vector whose allocator counts the bytes every
// buffer of the process holds, so the engine can report what its parameters, optimizer state and
// activations take (the CUDA twin, cuda/buffer.h, counts device memory the same way).
#pragma once
#include <atomic>
#include <cstddef>  // size_t
#include <cstdint>  // int64_t
#include <memory>   // std::allocator
#include <new>      // std::bad_alloc
#include <vector>

#include "../../common/allocation.h"  // failed_request_bytes

namespace paratrain::cpu {

// Bytes held by all kernel buffers of this process now.
inline std::atomic<int64_t>& buffer_bytes() {
  static std::atomic<int64_t> bytes{0};
  return bytes;
}

template <typename T>
struct CountingAllocator {
  using value_type = T;
  CountingAllocator() = default;
  template <typename U>
  CountingAllocator(const CountingAllocator<U>&) {}
  T* allocate(size_t n) {
    T* p = nullptr;
    try {
      p = std::allocator<T>().allocate(n);
    } catch (const std::bad_alloc&) {
      failed_request_bytes() = static_cast<int64_t>(n * sizeof(T));  // the size allocating() reports
      throw;
    }
    buffer_bytes() += static_cast<int64_t>(n * sizeof(T));
    return p;
  }
  void deallocate(T* p, size_t n) {
    buffer_bytes() -= static_cast<int64_t>(n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const CountingAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CountingAllocator<U>&) const { return false; }
};

template <typename T>
using Buffer = std::vector<T, CountingAllocator<T>>;  // host memory

}  // namespace paratrain::cpu
