// rows.cu — twins of gather_rows / scatter_add_rows (cpu/rows.h) and bias_backward (cpu/linear.h).
#include "common.cuh"  // current_stream, CUDA_CHECK, to_float, from_float
#include "rows.cuh"

namespace paratrain::cuda {

namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void gather_rows_kernel(T* __restrict__ out, const T* __restrict__ in, const int* __restrict__ rows, int M,
                                   int H) {
  const long total = static_cast<long>(M) * H;
  for (long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x)
    out[i] = in[static_cast<long>(rows[i / H]) * H + i % H];
}

template <typename T>
__global__ void scatter_add_rows_kernel(T* __restrict__ dst, const T* __restrict__ src, const int* __restrict__ rows,
                                        int M, int H) {
  const long total = static_cast<long>(M) * H;
  for (long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    T* d = dst + static_cast<long>(rows[i / H]) * H + i % H;
    *d = from_float<T>(to_float(*d) + to_float(src[i]));
  }
}

// Column sums: a block (kTile columns × kLanes row lanes) owns kTile columns; lane y sums rows
// y, y + kLanes, ... and lane 0 adds the partials in order. A warp reads 4 rows × 8 columns.
constexpr int kTile = 8, kLanes = 32;
template <typename T>
__global__ void bias_backward_kernel(T* __restrict__ db, const T* __restrict__ dout, int N, int O) {
  __shared__ float part[kLanes][kTile];
  const int tx = threadIdx.x % kTile, ty = threadIdx.x / kTile;
  const int o = blockIdx.x * kTile + tx;
  float acc = 0;
  if (o < O)
    for (long n = ty; n < N; n += kLanes) acc += to_float(dout[n * O + o]);
  part[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && o < O) {
    float s = 0;
    for (int y = 0; y < kLanes; y++) s += part[y][tx];
    db[o] = from_float<T>(to_float(db[o]) + s);
  }
}

}  // namespace

template <typename T>
void gather_rows(T* out, const T* in, const int* rows, int M, int H) {
  if (M <= 0 || H <= 0) return;
  gather_rows_kernel<<<grid_for(static_cast<long>(M) * H, kBlock), kBlock, 0, current_stream()>>>(out, in, rows, M, H);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void scatter_add_rows(T* dst, const T* src, const int* rows, int M, int H) {
  if (M <= 0 || H <= 0) return;
  scatter_add_rows_kernel<<<grid_for(static_cast<long>(M) * H, kBlock), kBlock, 0, current_stream()>>>(dst, src, rows,
                                                                                                       M, H);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bias_backward(T* db, const T* dout, int N, int O) {
  if (N <= 0 || O <= 0) return;
  bias_backward_kernel<<<(O + kTile - 1) / kTile, kTile * kLanes, 0, current_stream()>>>(db, dout, N, O);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                      \
  template void gather_rows<T>(T*, const T*, const int*, int, int);         \
  template void scatter_add_rows<T>(T*, const T*, const int*, int, int);    \
  template void bias_backward<T>(T*, const T*, int, int);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

}  // namespace paratrain::cuda
