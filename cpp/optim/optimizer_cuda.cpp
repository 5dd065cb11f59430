// optimizer_cuda.cpp — the update rules on the GPU: the multi-tensor kernels of
// cpp/kernels/cuda/optimizer.cu over the flat device buffers, with the host doing what the CPU
// optimizer does on the host: the global gradient norm from the per-tensor sums of squares (split
// tensors summed over the tensor-parallel group), the step's scalars (Optimizer::begin_update),
// skipping non-finite steps, and LAMB's per-tensor norms all-reduced between the two passes.
// Compiled only in the CUDA build (PARATRAIN_BACKEND_CUDA); the reference is optimizer_cpu.cpp.
#include <cmath>  // std::sqrt, std::isfinite

#include "../kernels/cuda/optimizer.cuh"  // multi_tensor_sum_squares, adamw_update, lamb_*
#include "optimizer.h"

namespace paratrain {

namespace {

class CudaOptimizer final : public Optimizer {
 public:
  CudaOptimizer(const OptimizerConfig& cfg, const ParamLayout& layout);
  OptimizerResult step(float* params, float* grads, float lr, Communicator& tp, float unscale) override;

 private:
  cuda::OptimStepArgs args(float lr, const StepScalars& sc) const;
  int count_ = 0;
  int64_t chunks_ = 0;
  std::vector<cuda::OptimTensor> tensors_host_;
  // The layout as the kernels read it, held as 8-byte words (a DeviceBuffer fills only arithmetic
  // types; OptimTensor is three of them).
  kernels::Buffer<int64_t> tensor_words_;
  const cuda::OptimTensor* tensors() const { return reinterpret_cast<const cuda::OptimTensor*>(tensor_words_.data()); }
  kernels::Buffer<double> scratch_;             // optim_scratch_doubles(chunks)
  kernels::Buffer<double> sq_, norms_;          // [count] Σg² per tensor; LAMB [2·count] ‖w‖², ‖u‖²
  std::vector<double> sq_host_, norms_host_, split_norms_;
};

CudaOptimizer::CudaOptimizer(const OptimizerConfig& cfg, const ParamLayout& layout) : Optimizer(cfg, layout) {
  count_ = static_cast<int>(layout.params().size());
  tensors_host_.resize(static_cast<size_t>(count_));
  for (int t = 0; t < count_; t++) {
    const ParamInfo& p = layout.at(t);
    tensors_host_[static_cast<size_t>(t)] = cuda::OptimTensor{p.offset, p.numel, p.decay ? 1 : 0, 0};
  }
  chunks_ = cuda::plan_optim_chunks(tensors_host_.data(), count_);
  static_assert(sizeof(cuda::OptimTensor) % sizeof(int64_t) == 0, "OptimTensor must be whole 8-byte words");
  const size_t words = tensors_host_.size() * sizeof(cuda::OptimTensor) / sizeof(int64_t);
  tensor_words_.assign(words, 0);
  kernels::upload(tensor_words_.data(), reinterpret_cast<const int64_t*>(tensors_host_.data()),
                  static_cast<long>(words));
  scratch_.assign(static_cast<size_t>(cuda::optim_scratch_doubles(chunks_)), 0.0);
  sq_.assign(static_cast<size_t>(count_), 0.0);
  norms_.assign(2 * static_cast<size_t>(count_), 0.0);
  sq_host_.assign(static_cast<size_t>(count_), 0.0);
  norms_host_.assign(2 * static_cast<size_t>(count_), 0.0);
}

cuda::OptimStepArgs CudaOptimizer::args(float lr, const StepScalars& sc) const {
  return cuda::OptimStepArgs{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, sc.bc1, sc.bc2, sc.grad_scale,
                             sc.unscale, cfg_.apex};
}

OptimizerResult CudaOptimizer::step(float* params, float* grads, float lr, Communicator& tp, float unscale) {
  OptimizerResult res;
  // ‖g‖²: per-tensor sums on the device, split shards summed over the TP group, replicated counted once.
  cuda::multi_tensor_sum_squares(sq_.data(), static_cast<const float*>(grads), tensors(), count_, chunks_,
                                 scratch_.data());
  kernels::download(sq_host_.data(), sq_.data(), count_);
  double split = 0, replicated = 0;
  for (int t = 0; t < count_; t++)
    (layout_.at(t).split_dim >= 0 ? split : replicated) += sq_host_[static_cast<size_t>(t)];
  if (tp.size() > 1) tp.all_reduce_sum(&split, 1);
  res.grad_norm = std::sqrt(split + replicated) * static_cast<double>(unscale);
  if (!std::isfinite(res.grad_norm)) {
    res.skipped = true;
    return res;
  }
  const cuda::OptimStepArgs a = args(lr, begin_update(res.grad_norm, unscale));
  float* no_copy = nullptr;  // fp32 weights only: no low-precision copy to refresh
  if (cfg_.kind == OptimizerKind::AdamW) {
    cuda::adamw_update(params, no_copy, m_.data(), v_.data(), static_cast<const float*>(grads), tensors(),
                       count_, chunks_, a);
    return res;
  }
  cuda::lamb_moments(m_.data(), v_.data(), norms_.data(), params, static_cast<const float*>(grads), tensors(),
                     count_, chunks_, a, scratch_.data());
  if (tp.size() > 1) {
    // A split tensor's norms are over the whole tensor (the CPU optimizer's reduction, on host copies).
    const size_t n = 2 * static_cast<size_t>(count_);
    kernels::download(norms_host_.data(), norms_.data(), static_cast<long>(n));
    split_norms_.assign(n, 0.0);
    for (int t = 0; t < count_; t++)
      if (layout_.at(t).split_dim >= 0) {
        split_norms_[static_cast<size_t>(t)] = norms_host_[static_cast<size_t>(t)];
        split_norms_[static_cast<size_t>(count_ + t)] = norms_host_[static_cast<size_t>(count_ + t)];
      }
    tp.all_reduce_sum(split_norms_.data(), n);
    for (int t = 0; t < count_; t++)
      if (layout_.at(t).split_dim >= 0) {
        norms_host_[static_cast<size_t>(t)] = split_norms_[static_cast<size_t>(t)];
        norms_host_[static_cast<size_t>(count_ + t)] = split_norms_[static_cast<size_t>(count_ + t)];
      }
    kernels::upload(norms_.data(), norms_host_.data(), static_cast<long>(n));
  }
  cuda::lamb_update(params, no_copy, m_.data(), v_.data(), norms_.data(), tensors(), count_, chunks_, a);
  return res;
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const ParamLayout& layout) {
  return std::make_unique<CudaOptimizer>(cfg, layout);
}

}  // namespace paratrain
