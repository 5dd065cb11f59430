// matmul_precision.h — what the fully connected layers' GEMMs compute in (config `precision`).
// Outside the backend namespaces, like gelu_form.h. Storage stays fp32 in every mode: parameters,
// gradients, optimizer state and activations are float buffers; Bf16 and Fp16 let the GEMMs round
// their fp32 inputs to 16 bits and run on tensor cores with fp32 accumulation (cuBLASLt's
// CUBLAS_COMPUTE_32F_FAST_16BF / _16F). The CPU computes in Fp32 only.
#pragma once
#include <string>

namespace paratrain {

enum class MatmulPrecision { Fp32, Bf16, Fp16 };

inline const char* precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::Bf16 ? "bf16" : p == MatmulPrecision::Fp16 ? "fp16" : "fp32";
}

}  // namespace paratrain
