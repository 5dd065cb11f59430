// nccl_api.h — the part of NCCL's C API that NcclCommunicator uses, declared here and bound at run
// time with dlopen, so the CUDA build needs neither NCCL's headers nor a link-time libnccl: it
// compiles wherever nvcc is (CI included) and a job that never uses NCCL never loads it. The
// declarations follow NCCL 2.x's nccl.h: the enum values, the 128-byte unique id passed by value,
// and each function's signature (NCCL keeps them stable across 2.x). Non-blocking communicators
// come from NCCL_COMM_BLOCKING=0, which NcclCommunicator sets for itself before ncclCommInitRank,
// so ncclConfig_t (whose layout is version-tagged) is never built here.
#pragma once
#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstddef>  // size_t

struct ncclComm;  // opaque: NCCL's communicator

namespace paratrain::nccl {

enum Result : int {  // ncclResult_t
  Success = 0,
  UnhandledCudaError = 1,
  SystemError = 2,
  InternalError = 3,
  InvalidArgument = 4,
  InvalidUsage = 5,
  RemoteError = 6,
  InProgress = 7,
};
enum DataType : int { Float32 = 7, Float64 = 8, BFloat16 = 9 };  // ncclDataType_t (the ones we send)
enum RedOp : int { Sum = 0, Max = 2 };                            // ncclRedOp_t

constexpr size_t kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct UniqueId {                       // ncclUniqueId
  char internal[kUniqueIdBytes];
};
using Comm = struct ::ncclComm*;  // ncclComm_t

struct Api {
  Result (*GetUniqueId)(UniqueId* id);
  Result (*CommInitRank)(Comm* comm, int nranks, UniqueId id, int rank);
  Result (*CommFinalize)(Comm comm);
  Result (*CommDestroy)(Comm comm);
  Result (*CommAbort)(Comm comm);
  Result (*CommGetAsyncError)(Comm comm, Result* state);
  const char* (*GetErrorString)(Result result);
  const char* (*GetLastError)(Comm comm);
  Result (*GetVersion)(int* version);
  Result (*AllReduce)(const void* send, void* recv, size_t count, DataType type, RedOp op, Comm comm,
                      cudaStream_t stream);
  Result (*AllGather)(const void* send, void* recv, size_t count, DataType type, Comm comm, cudaStream_t stream);
  Result (*ReduceScatter)(const void* send, void* recv, size_t count, DataType type, RedOp op, Comm comm,
                          cudaStream_t stream);
  Result (*Broadcast)(const void* send, void* recv, size_t count, DataType type, int root, Comm comm,
                      cudaStream_t stream);
};

// NCCL, loaded once: $PARATRAIN_NCCL_LIBRARY when set, else libnccl.so.2 from the loader's path
// (LD_LIBRARY_PATH: NVIDIA's pip wheel puts it in site-packages/nvidia/nccl/lib). Throws
// Error("ERR_NCCL_LOAD", ...) naming what was tried and the missing symbol, if any.
const Api& api();

}  // namespace paratrain::nccl
