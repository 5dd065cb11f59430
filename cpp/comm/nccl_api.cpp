// nccl_api.cpp — see nccl_api.h.
#include "nccl_api.h"

#include <dlfcn.h>  // dlopen, dlsym, dlerror

#include <cstdlib>  // std::getenv
#include <mutex>    // std::call_once
#include <string>

#include "../common/error.h"  // Error

namespace paratrain::nccl {

namespace {

template <typename F>
void bind(void* lib, const char* name, F& slot, const std::string& file) {
  dlerror();
  void* sym = dlsym(lib, name);
  if (!sym)
    throw Error("ERR_NCCL_LOAD", file + " has no " + name + ": NCCL 2.14 or newer is needed (set PARATRAIN_NCCL_LIBRARY " +
                                     "to another libnccl.so)");
  slot = reinterpret_cast<F>(sym);
}

Api load() {
  const char* chosen = std::getenv("PARATRAIN_NCCL_LIBRARY");
  const std::string file = chosen && *chosen ? chosen : "libnccl.so.2";
  void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    throw Error("ERR_NCCL_LOAD", "cannot load NCCL (" + file + "): " + (why ? why : "unknown error") +
                                     "; install it (pip install nvidia-nccl-cu13, apt's libnccl2) and put its lib folder on " +
                                     "LD_LIBRARY_PATH, or set PARATRAIN_NCCL_LIBRARY to the library");
  }
  Api a{};
  bind(lib, "ncclGetUniqueId", a.GetUniqueId, file);
  bind(lib, "ncclCommInitRank", a.CommInitRank, file);
  bind(lib, "ncclCommFinalize", a.CommFinalize, file);
  bind(lib, "ncclCommDestroy", a.CommDestroy, file);
  bind(lib, "ncclCommAbort", a.CommAbort, file);
  bind(lib, "ncclCommGetAsyncError", a.CommGetAsyncError, file);
  bind(lib, "ncclGetErrorString", a.GetErrorString, file);
  bind(lib, "ncclGetLastError", a.GetLastError, file);
  bind(lib, "ncclGetVersion", a.GetVersion, file);
  bind(lib, "ncclAllReduce", a.AllReduce, file);
  bind(lib, "ncclAllGather", a.AllGather, file);
  bind(lib, "ncclReduceScatter", a.ReduceScatter, file);
  bind(lib, "ncclBroadcast", a.Broadcast, file);
  return a;  // the library stays loaded for the life of the process
}

}  // namespace

const Api& api() {
  static Api loaded;
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    try {
      loaded = load();
    } catch (const Error& e) {
      failure = e.what();
    }
  });
  if (!failure.empty()) throw Error("ERR_NCCL_LOAD", failure);
  return loaded;
}

}  // namespace paratrain::nccl
