// Sampling on the GPU: greedy picks (argmax), so a greedy decode step sends back a token
// id a row instead of the row's logits (196 KB for a 49,152-token vocabulary; at 128
// sequences the logits alone would be 25 MB a step over PCIe). Two passes: blocks over
// slices of each row, then a warp a row over the slices' bests (one block a row took 43
// us for one 49,152-token row on an H100).
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"

namespace upg::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kSlice = 2048;  // logits a block of the first pass reduces

// The larger of two (value, index) pairs; on equal values the lower index, as the CPU's
// argmax (std::max_element) keeps the first. NaN never wins.
__device__ inline void better(float& v, int32_t& i, float ov, int32_t oi) {
  if (ov > v || (ov == v && oi < i) || (v != v && ov == ov)) v = ov, i = oi;
}

// The block's best pair into thread 0's (v, i).
__device__ inline void block_best(float& v, int32_t& i) {
  for (int o = 16; o > 0; o /= 2)
    better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
  __shared__ float sv[kThreads / 32];
  __shared__ int32_t si[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sv[warp] = v, si[warp] = i;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kThreads / 32; ++w) better(v, i, sv[w], si[w]);
}

// Pass 1, block (s, r): the best of row r's slice s, into parts [rows, slices].
__global__ void __launch_bounds__(kThreads) slices_kernel(const float* logits, int64_t vocab, ArgmaxParts parts) {
  pdl_wait();
  pdl_trigger();
  const int64_t slices = gridDim.x, first = int64_t(blockIdx.x) * kSlice;
  const float* row = logits + int64_t(blockIdx.y) * vocab;
  const int64_t end = first + kSlice < vocab ? first + kSlice : vocab;
  float v = -INFINITY;
  int32_t i = int32_t(vocab);
  for (int64_t c = first + threadIdx.x; c < end; c += kThreads) better(v, i, row[c], int32_t(c));
  block_best(v, i);
  if (threadIdx.x == 0) {
    parts.values[blockIdx.y * slices + blockIdx.x] = v;
    parts.ids[blockIdx.y * slices + blockIdx.x] = i;
  }
}

// Pass 2, one warp a row: the best of its slices. A row of NaN only: index 0, as the
// CPU would return the first element.
__global__ void rows_kernel(ArgmaxParts parts, int64_t rows, int64_t slices, int64_t vocab, int32_t* ids) {
  pdl_wait();
  pdl_trigger();
  const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  float v = -INFINITY;
  int32_t i = int32_t(vocab);
  for (int64_t s = lane; s < slices; s += 32) better(v, i, parts.values[r * slices + s], parts.ids[r * slices + s]);
  for (int o = 16; o > 0; o /= 2)
    better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
  if (lane == 0) ids[r] = i < vocab ? i : 0;
}

}  // namespace

int64_t argmax_slices(int64_t vocab) { return (vocab + kSlice - 1) / kSlice; }

void argmax(const float* logits, int64_t rows, int64_t vocab, int32_t* ids, const ArgmaxParts& parts, const Stream& s) {
  if (rows <= 0 || vocab <= 0) return;
  const int64_t slices = argmax_slices(vocab);
  launch("argmax", slices_kernel, dim3(unsigned(slices), unsigned(rows)), kThreads, 0, s, logits, vocab, parts);
  launch("argmax", rows_kernel, unsigned((rows * 32 + 255) / 256), 256, 0, s, parts, rows, slices, vocab, ids);
}

}  // namespace upg::cuda
