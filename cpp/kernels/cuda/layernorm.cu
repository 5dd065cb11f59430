// layernorm.cu — twin of cpu/layernorm.h. One warp per row for the row-wise parts; the parameter
// gradients are column sums in which each thread block owns a tile of columns and walks all rows
// in a fixed order, so dw and db are bitwise reproducible without atomics or scratch memory.
#include "common.cuh"     // current_stream, CUDA_CHECK, load_floats, warp_sum
#include "layernorm.cuh"

namespace paratrain::cuda {

namespace {

constexpr int kRowBlock = 256;  // 8 warps = 8 rows per block

// One warp per row: mean and variance in two passes over the row (as the CPU kernel), then the output.
template <int V, typename T>
__global__ void layernorm_forward_kernel(T* __restrict__ out, T* __restrict__ mean, T* __restrict__ rstd,
                                         const T* __restrict__ in, const T* __restrict__ w,
                                         const T* __restrict__ b, int N, int C, float eps) {
  const int lane = threadIdx.x % 32;
  const long warps = static_cast<long>(gridDim.x) * (blockDim.x / 32);
  for (long n = static_cast<long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; n < N; n += warps) {
    const T* x = in + n * C;
    float sum = 0;
    for (int c = lane * V; c < C; c += 32 * V) {
      float xs[V];
      load_floats<V>(xs, x + c);
#pragma unroll
      for (int k = 0; k < V; k++) sum += xs[k];
    }
    const float m = warp_sum(sum) / C;
    float var = 0;
    for (int c = lane * V; c < C; c += 32 * V) {
      float xs[V];
      load_floats<V>(xs, x + c);
#pragma unroll
      for (int k = 0; k < V; k++) var += (xs[k] - m) * (xs[k] - m);
    }
    const float s = 1.0f / sqrtf(warp_sum(var) / C + eps);
    T* y = out + n * C;
    for (int c = lane * V; c < C; c += 32 * V) {
      float xs[V], ws[V], bs[V], ys[V];
      load_floats<V>(xs, x + c);
      load_floats<V>(ws, w + c);
      load_floats<V>(bs, b + c);
#pragma unroll
      for (int k = 0; k < V; k++) ys[k] = (xs[k] - m) * s * ws[k] + bs[k];
      store_floats<V>(y + c, ys);
    }
    if (lane == 0) {
      mean[n] = from_float<T>(m);
      rstd[n] = from_float<T>(s);
    }
  }
}

// One warp per row: dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)), dx̂ = dout · w.
template <int V, typename T>
__global__ void layernorm_backward_input_kernel(T* __restrict__ din, const T* __restrict__ dout,
                                                const T* __restrict__ in, const T* __restrict__ w,
                                                const T* __restrict__ mean, const T* __restrict__ rstd, int N, int C,
                                                bool accumulate_din) {
  const int lane = threadIdx.x % 32;
  const long warps = static_cast<long>(gridDim.x) * (blockDim.x / 32);
  for (long n = static_cast<long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; n < N; n += warps) {
    const T* x = in + n * C;
    const T* dy = dout + n * C;
    T* dx = din + n * C;
    const float m = to_float(mean[n]), s = to_float(rstd[n]);
    float sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (int c = lane * V; c < C; c += 32 * V) {
      float xs[V], dys[V], ws[V];
      load_floats<V>(xs, x + c);
      load_floats<V>(dys, dy + c);
      load_floats<V>(ws, w + c);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float dxhat = dys[k] * ws[k];
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * (xs[k] - m) * s;
      }
    }
    sum_dxhat = warp_sum(sum_dxhat) / C;
    sum_dxhat_xhat = warp_sum(sum_dxhat_xhat) / C;
    for (int c = lane * V; c < C; c += 32 * V) {
      float xs[V], dys[V], ws[V], gs[V];
      load_floats<V>(xs, x + c);
      load_floats<V>(dys, dy + c);
      load_floats<V>(ws, w + c);
      if (accumulate_din) load_floats<V>(gs, dx + c);
#pragma unroll
      for (int k = 0; k < V; k++) {
        const float xhat = (xs[k] - m) * s;
        const float g = s * (dys[k] * ws[k] - sum_dxhat - xhat * sum_dxhat_xhat);
        gs[k] = accumulate_din ? gs[k] + g : g;
      }
      store_floats<V>(dx + c, gs);
    }
  }
}

// Column sums for dw, db: block (kTile columns × kLanes row lanes) owns kTile columns; lane y sums
// rows y, y + kLanes, ... and lane 0 adds the kLanes partials in order. A warp reads 4 rows × 8
// consecutive columns, so loads stay coalesced in 32-byte sectors.
constexpr int kTile = 8, kLanes = 32;
template <typename T>
__global__ void layernorm_backward_params_kernel(T* __restrict__ dw, T* __restrict__ db, const T* __restrict__ dout,
                                                 const T* __restrict__ in, const T* __restrict__ mean,
                                                 const T* __restrict__ rstd, int N, int C) {
  __shared__ float part_w[kLanes][kTile], part_b[kLanes][kTile];
  const int tx = threadIdx.x % kTile, ty = threadIdx.x / kTile;
  const int c = blockIdx.x * kTile + tx;
  float acc_w = 0, acc_b = 0;
  if (c < C) {
    for (long n = ty; n < N; n += kLanes) {
      const float dy = to_float(dout[n * C + c]);
      const float xhat = (to_float(in[n * C + c]) - to_float(mean[n])) * to_float(rstd[n]);
      acc_w += dy * xhat;
      acc_b += dy;
    }
  }
  part_w[ty][tx] = acc_w;
  part_b[ty][tx] = acc_b;
  __syncthreads();
  if (ty == 0 && c < C) {
    float sw = 0, sb = 0;
    for (int y = 0; y < kLanes; y++) {
      sw += part_w[y][tx];
      sb += part_b[y][tx];
    }
    dw[c] = from_float<T>(to_float(dw[c]) + sw);
    db[c] = from_float<T>(to_float(db[c]) + sb);
  }
}

}  // namespace

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* w, const T* b, int N, int C, T eps) {
  if (N <= 0) return;
  const unsigned grid = grid_for(N, kRowBlock / 32);
  const float e = static_cast<float>(eps);
  if (can_pack(C, kPack<T>) && aligned16(out, in, w, b))
    layernorm_forward_kernel<kPack<T>><<<grid, kRowBlock, 0, current_stream()>>>(out, mean, rstd, in, w, b, N, C, e);
  else
    layernorm_forward_kernel<1><<<grid, kRowBlock, 0, current_stream()>>>(out, mean, rstd, in, w, b, N, C, e);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void layernorm_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w, const T* mean, const T* rstd,
                        int N, int C, bool accumulate_din) {
  if (N <= 0) return;
  const unsigned grid = grid_for(N, kRowBlock / 32);
  if (can_pack(C, kPack<T>) && aligned16(din, dout, in, w))
    layernorm_backward_input_kernel<kPack<T>>
        <<<grid, kRowBlock, 0, current_stream()>>>(din, dout, in, w, mean, rstd, N, C, accumulate_din);
  else
    layernorm_backward_input_kernel<1>
        <<<grid, kRowBlock, 0, current_stream()>>>(din, dout, in, w, mean, rstd, N, C, accumulate_din);
  CUDA_CHECK_LAUNCH();
  layernorm_backward_params_kernel<<<(C + kTile - 1) / kTile, kTile * kLanes, 0, current_stream()>>>(
      dw, db, dout, in, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                    \
  template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, T);              \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int, int, \
                                      bool);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

}  // namespace paratrain::cuda
