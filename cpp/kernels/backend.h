// backend.h — the kernel set the model is compiled against. The model code calls kernels
// unqualified through `namespace kernels`, keeps activations in `kernels::Buffer<T>` and never reads
// or writes a buffer element on the host (tensor_ops.h has the small maps and the host transfers).
// The default build: the CPU kernels (the reference), buffers in host memory. With
// PARATRAIN_BACKEND_CUDA the same model sources compile against the CUDA twins (cpp/kernels/cuda/,
// same names and arguments, device pointers) and device buffers. Where a twin's needs differ, the
// contract carries both: attention's saved state and scratch are sized by attention_saved_floats /
// attention_scratch_floats, and the reductions that return a figure take loss_scratch_doubles(rows)
// doubles of scratch (the CPU needs none).
#pragma once
#include "cpu/cross_entropy.h"  // CrossEntropyResult, BinaryResult; count_targets (host memory, both builds)
#include "gelu_form.h"          // GeluForm

#if defined(PARATRAIN_BACKEND_CUDA)
#include "cuda/attention.cuh"      // attention_forward/backward (row logsumexp), attention_*_floats
#include "cuda/buffer.h"           // DeviceBuffer
#include "cuda/cross_entropy.cuh"  // softmax_cross_entropy, vocab_parallel_*, binary_cross_entropy
#include "cuda/elementwise.cuh"    // gelu_*, dropout_*, residual_dropout_forward, tanh_*
#include "cuda/embedding.cuh"      // embedding_forward/backward
#include "cuda/gemm_cublaslt.h"    // linear_forward/backward on cuBLASLt
#include "cuda/layernorm.cuh"      // layernorm_forward/backward
#include "cuda/rows.cuh"           // gather_rows, scatter_add_rows
#include "cuda/sampling.cuh"       // gumbel_argmax_rows
#include "cuda/sync.h"             // StreamEvent, bind_thread
#include "cuda/tensor_ops.cuh"     // fill, copy, add_into, ..., upload/download

namespace paratrain {
namespace cuda {
template <typename T>
using Buffer = DeviceBuffer<T>;  // device memory
constexpr bool kHostBuffers = false;
using cpu::count_targets;        // counts over the batch's host copy
}  // namespace cuda
namespace kernels = cuda;
}  // namespace paratrain
#else
#include "cpu/attention.h"    // attention_forward/backward (probabilities), attention_*_floats
#include "cpu/buffer.h"       // Buffer (host memory, counted)
#include "cpu/dropout.h"      // dropout_*, residual_dropout_forward
#include "cpu/embedding.h"    // embedding_forward/backward
#include "cpu/gelu.h"         // gelu_forward/backward
#include "cpu/layernorm.h"    // layernorm_forward/backward
#include "cpu/linear.h"       // linear_forward/backward
#include "cpu/rows.h"         // gather_rows, scatter_add_rows, tanh_*
#include "cpu/sampling.h"     // gumbel_argmax_rows
#include "cpu/sync.h"         // StreamEvent, bind_thread (no-ops)
#include "cpu/tensor_ops.h"   // fill, copy, add_into, ..., upload/download

namespace paratrain {
namespace cpu {
constexpr bool kHostBuffers = true;  // buffers are host memory: a batch needs no upload
}  // namespace cpu
namespace kernels = cpu;
}  // namespace paratrain
#endif
