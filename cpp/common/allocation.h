// allocation.h — allocating(what, body): runs the allocations of one named part of the engine's
// state so that running out of memory is an Error naming that part (ERR_OUT_OF_MEMORY on the host,
// ERR_CUDA_OOM on the device) instead of a bare std::bad_alloc that names nothing.
#pragma once
#include <cstdint>
#include <cstdio>  // std::snprintf
#include <new>     // std::bad_alloc
#include <string>

#include "error.h"  // Error

namespace paratrain {

// An out-of-memory Error that already names what was being allocated: an outer allocating()
// passes it on untouched.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// "3.2 GiB", "640 MiB", "12 KiB", "512 bytes".
inline std::string byte_size(int64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    unit++;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

// The size of the last host request that failed on this thread (set by the counting allocator of
// the CPU kernel buffers, which knows it; std::bad_alloc does not carry it). 0 when unknown.
inline int64_t& failed_request_bytes() {
  thread_local int64_t bytes = 0;
  return bytes;
}

// Runs `body`, which allocates `what` (e.g. "the optimizer's moments"); `bytes` is what it asks for
// in all, or -1 when only the failing request's size is known. Returns what `body` returns.
template <typename F>
auto allocating(const std::string& what, int64_t bytes, F&& body) -> decltype(body()) {
  try {
    failed_request_bytes() = 0;
    return body();
  } catch (const OutOfMemoryError&) {
    throw;
  } catch (const std::bad_alloc&) {
    const int64_t request = failed_request_bytes();
    const std::string size = bytes >= 0 ? byte_size(bytes) : request > 0 ? "a request of " + byte_size(request) : "";
    throw OutOfMemoryError("ERR_OUT_OF_MEMORY",
                           "out of memory allocating " + what + (size.empty() ? "" : " (" + size + ")") +
                               ": more than this machine, or the process's memory limit (ulimit -v, a container's "
                               "cgroup), can hold with what is already allocated. Lower train.micro_batch, "
                               "model.seq_len or the model's size (model.hidden, ffn, layers, vocab_size), or "
                               "split it with parallel.tensor");
  } catch (const Error& e) {
    if (e.code() != "ERR_CUDA_OOM") throw;
    throw OutOfMemoryError(e.code(), "allocating " + what + (bytes >= 0 ? " (" + byte_size(bytes) + ")" : "") +
                                         ": " + e.what());
  }
}

}  // namespace paratrain
