// embedding.cu — twin of cpu/embedding.h. The backward is a scatter-add with repeated token ids;
// instead of float atomics (order-dependent, so not reproducible) a block owns a tile of columns
// and one residue class of rows (row % kSlices) and walks all tokens in order, adding those that
// fall in its class: each output element has one writer and the CPU's summation order.
#include "common.cuh"  // current_stream, CUDA_CHECK, to_float, from_float
#include "embedding.cuh"

namespace paratrain::cuda {

namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void embedding_forward_kernel(T* __restrict__ out, const int* __restrict__ tokens,
                                         const int* __restrict__ segments, const T* __restrict__ word,
                                         const T* __restrict__ position, const T* __restrict__ segment, long N,
                                         int T_, int H, int vocab_start, int vocab_rows) {
  const long total = N * H;
  for (long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const long n = i / H;
    const int c = static_cast<int>(i % H);
    const int row = tokens[n] - vocab_start;
    float y = (row >= 0 && row < vocab_rows) ? to_float(word[static_cast<long>(row) * H + c]) : 0.0f;
    if (position) y += to_float(position[(n % T_) * H + c]);
    if (segment) y += to_float(segment[static_cast<long>(segments[n]) * H + c]);
    out[i] = from_float<T>(y);
  }
}

// dtable[row, c] += Σ_{n: ids[n] − start = row} dout[n, c], rows in [0, rows). Block (x: column
// tile of kCols, y: slice) adds the tokens whose row % gridDim.y == blockIdx.y; ids are staged
// through shared memory in chunks.
constexpr int kCols = 128, kSlices = 32, kChunk = 1024;
template <typename T>
__global__ void scatter_by_id_kernel(T* __restrict__ dtable, const T* __restrict__ dout, const int* __restrict__ ids,
                                     long N, int H, int start, int rows) {
  __shared__ int s_rows[kChunk];
  const int c = blockIdx.x * kCols + threadIdx.x;
  const int slice = blockIdx.y, slices = gridDim.y;
  for (long n0 = 0; n0 < N; n0 += kChunk) {
    const int len = static_cast<int>(N - n0 < kChunk ? N - n0 : kChunk);
    __syncthreads();  // the previous chunk is consumed
    for (int k = threadIdx.x; k < len; k += blockDim.x) {
      const int row = ids[n0 + k] - start;
      s_rows[k] = (row >= 0 && row < rows && row % slices == slice) ? row : -1;
    }
    __syncthreads();
    if (c >= H) continue;
    for (int k = 0; k < len; k++) {
      const int row = s_rows[k];  // the same for the whole block: no divergence
      if (row < 0) continue;
      T* dst = dtable + static_cast<long>(row) * H + c;
      *dst = from_float<T>(to_float(*dst) + to_float(dout[(n0 + k) * H + c]));
    }
  }
}

// dposition[t, c] += Σ_b dout[b·T + t, c], b in order.
template <typename T>
__global__ void position_backward_kernel(T* __restrict__ dposition, const T* __restrict__ dout, int B, int T_,
                                         int H) {
  const long total = static_cast<long>(T_) * H;
  for (long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    float acc = to_float(dposition[i]);
    for (int b = 0; b < B; b++) acc += to_float(dout[static_cast<long>(b) * total + i]);
    dposition[i] = from_float<T>(acc);
  }
}

}  // namespace

template <typename T>
void embedding_forward(T* out, const int* tokens, const int* segments, const T* word, const T* position,
                       const T* segment, int B, int T_, int H, int vocab_start, int vocab_rows) {
  const long N = static_cast<long>(B) * T_;
  if (N <= 0 || H <= 0) return;
  embedding_forward_kernel<<<grid_for(N * H, kBlock), kBlock, 0, current_stream()>>>(
      out, tokens, segments, word, position, segment, N, T_, H, vocab_start, vocab_rows);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void embedding_backward(T* dword, T* dposition, T* dsegment, const T* dout, const int* tokens, const int* segments,
                        int B, int T_, int H, int vocab_start, int vocab_rows) {
  const long N = static_cast<long>(B) * T_;
  if (N <= 0 || H <= 0) return;
  const dim3 grid((H + kCols - 1) / kCols, kSlices);
  scatter_by_id_kernel<<<grid, kCols, 0, current_stream()>>>(dword, dout, tokens, N, H, vocab_start, vocab_rows);
  CUDA_CHECK_LAUNCH();
  if (dposition) {
    position_backward_kernel<<<grid_for(static_cast<long>(T_) * H, kBlock), kBlock, 0, current_stream()>>>(
        dposition, dout, B, T_, H);
    CUDA_CHECK_LAUNCH();
  }
  if (dsegment) {
    scatter_by_id_kernel<<<grid, kCols, 0, current_stream()>>>(dsegment, dout, segments, N, H, 0, INT_MAX);
    CUDA_CHECK_LAUNCH();
  }
}

#define INSTANTIATE(T)                                                                                            \
  template void embedding_forward<T>(T*, const int*, const int*, const T*, const T*, const T*, int, int, int, int, \
                                     int);                                                                        \
  template void embedding_backward<T>(T*, T*, T*, const T*, const int*, const int*, int, int, int, int, int);
PARATRAIN_INSTANTIATE_FLOAT_BF16(INSTANTIATE)
#undef INSTANTIATE

}  // namespace paratrain::cuda
