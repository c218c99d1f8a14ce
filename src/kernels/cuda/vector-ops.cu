// The elementwise and per-row ops of the CUDA backend: rmsnorm, rope, silu_mul, add,
// embed and kv_store. Each is one pass over its data; they are a small share of a step's
// bytes (the weights dominate), so they are written plainly: one block per row where a
// row needs a reduction, a grid-stride loop elsewhere.
#include <cuda_fp16.h>

#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/quantize.cuh"

namespace upg::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return int((n + kThreads - 1) / kThreads < 65535 * 16 ? (n + kThreads - 1) / kThreads : 65535 * 16); }

__device__ inline float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = 0;
  for (int i = 0; i < int(blockDim.x) / 32; ++i) total += shared[i];
  __syncthreads();
  return total;
}

// With a.q set, each warp then quantizes 32 columns of what the block wrote.
__global__ void rmsnorm_kernel(const float* x, const float* w, float* out, int64_t dim, float eps, Int8Acts a) {
  __shared__ float partial[kThreads / 32];
  const float* xr = x + int64_t(blockIdx.x) * dim;
  float* o = out + int64_t(blockIdx.x) * dim;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  const float scale = rsqrtf(block_sum(ss, partial) / float(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = xr[i] * scale * w[i];
  if (!a.q) return;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  for (int64_t b = threadIdx.x / 32; b < a.stride / 32; b += kThreads / 32) {
    const int64_t c = b * 32 + lane;
    quantize32(c < dim ? o[c] : 0.0f, lane, a, blockIdx.x, b);
  }
}

// One block per (token, head); thread i rotates the pair (i, i + half), or (2i, 2i + 1)
// when interleaved (Q/K rows in llama.cpp's order, RopeTable::interleaved).
__global__ void rope_kernel(float* x, const int32_t* positions, int n_heads, int head_dim, int half, bool interleaved,
                            const float* cos, const float* sin) {
  const int64_t t = blockIdx.y;
  float* v = x + (t * n_heads + blockIdx.x) * head_dim;
  const float* c = cos + int64_t(positions[t]) * half;
  const float* s = sin + int64_t(positions[t]) * half;
  const int step = interleaved ? 2 : 1, partner = interleaved ? 1 : half;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float* p = v + i * step;
    const float a = p[0], b = p[partner];
    p[0] = a * c[i] - b * s[i];
    p[partner] = b * c[i] + a * s[i];
  }
}

__global__ void silu_mul_kernel(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// Quantizing: one warp per 32 values (n % 32 == 0), the whole as one row of a.
__global__ void silu_mul_q_kernel(const float* g, const float* u, float* out, int64_t n, Int8Acts a) {
  const int64_t gw = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  if (gw * 32 >= n) return;
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const float v = g[i] / (1.0f + expf(-g[i])) * u[i];
  out[i] = v;
  quantize32(v, threadIdx.x % 32, a, 0, gw);
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void embed_kernel(DeviceWeight w, const int32_t* tokens, float* out) {
  const int64_t t = blockIdx.x, r = tokens[t];
  for (int64_t c = threadIdx.x; c < w.cols; c += blockDim.x) out[t * w.cols + c] = weight_value(w, r, c);
}

__global__ void kv_store_kernel(KvLayer kv, const int64_t* slots, int kv_dim, const float* k, const float* v) {
  const int64_t t = blockIdx.x, dst = slots[t] * kv_dim;
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    const float kf = k[t * kv_dim + i], vf = v[t * kv_dim + i];
    if (kv.half) {
      static_cast<__half*>(kv.k)[dst + i] = __float2half(kf);
      static_cast<__half*>(kv.v)[dst + i] = __float2half(vf);
    } else {
      static_cast<float*>(kv.k)[dst + i] = kf;
      static_cast<float*>(kv.v)[dst + i] = vf;
    }
  }
}

}  // namespace

void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n, float eps, const Int8Acts& acts,
             cudaStream_t s) {
  if (n <= 0) return;
  rmsnorm_kernel<<<unsigned(n), kThreads, 0, s>>>(x, w, out, dim, eps, acts);
  UPG_CUDA_CHECK_LAUNCH("rmsnorm");
}

void rope(float* x, const int32_t* positions, int64_t n, int n_heads, int head_dim, int rotary_dim, bool interleaved,
          const float* cos, const float* sin, cudaStream_t s) {
  if (n <= 0 || rotary_dim < 2) return;
  const int half = rotary_dim / 2;
  rope_kernel<<<dim3(unsigned(n_heads), unsigned(n)), half < 128 ? 64 : 128, 0, s>>>(x, positions, n_heads, head_dim,
                                                                                  half, interleaved, cos, sin);
  UPG_CUDA_CHECK_LAUNCH("rope");
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n, const Int8Acts& acts, cudaStream_t s) {
  if (n <= 0) return;
  if (acts.q)
    silu_mul_q_kernel<<<unsigned((n + kThreads - 1) / kThreads), kThreads, 0, s>>>(gate, up, out, n, acts);
  else
    silu_mul_kernel<<<blocks_for(n), kThreads, 0, s>>>(gate, up, out, n);
  UPG_CUDA_CHECK_LAUNCH("silu_mul");
}

void add(float* y, const float* x, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, s>>>(y, x, n);
  UPG_CUDA_CHECK_LAUNCH("add");
}

void embed(const DeviceWeight& w, const int32_t* tokens, int64_t n, float* out, cudaStream_t s) {
  if (n <= 0) return;
  embed_kernel<<<unsigned(n), kThreads, 0, s>>>(w, tokens, out);
  UPG_CUDA_CHECK_LAUNCH("embed");
}

void kv_store(const KvLayer& kv, const int64_t* slots, int64_t n, int kv_dim, const float* k, const float* v,
              cudaStream_t s) {
  if (n <= 0) return;
  kv_store_kernel<<<unsigned(n), kThreads, 0, s>>>(kv, slots, kv_dim, k, v);
  UPG_CUDA_CHECK_LAUNCH("kv_store");
}

}  // namespace upg::cuda
