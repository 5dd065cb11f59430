// backend.h — the kernel set the model is compiled against. The model code calls kernels
// unqualified through `namespace kernels`, and keeps activations in `kernels::Buffer<T>`.
// This build: the CPU kernels (the reference). A CUDA build compiles the same model source with
// PARATRAIN_BACKEND_CUDA, against cpp/kernels/cuda/ twins with the same signatures and a device
// buffer type.
#pragma once
#include <vector>

#if defined(PARATRAIN_BACKEND_CUDA)
#error "the CUDA kernel set (cpp/kernels/cuda/) is not part of this build"
#else
#include "cpu/attention.h"      // attention_forward/backward
#include "cpu/cross_entropy.h"  // softmax_cross_entropy, count_targets, binary_cross_entropy
#include "cpu/dropout.h"        // dropout_*, residual_dropout_forward
#include "cpu/embedding.h"      // embedding_forward/backward
#include "cpu/gelu.h"           // gelu_forward/backward
#include "cpu/layernorm.h"      // layernorm_forward/backward
#include "cpu/linear.h"         // linear_forward/backward
#include "cpu/rows.h"           // gather_rows, scatter_add_rows, tanh_*
#include "cpu/sampling.h"       // gumbel_argmax_rows

namespace paratrain {
namespace cpu {
template <typename T>
using Buffer = std::vector<T>;  // host memory
}  // namespace cpu
namespace kernels = cpu;
}  // namespace paratrain
#endif
