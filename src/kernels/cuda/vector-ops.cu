// The elementwise and per-row ops of the CUDA backend: rmsnorm, rope, silu_mul, add,
// embed, kv_store and rope_store. Each is one pass over its data; they are a small share
// of a step's bytes (the weights dominate), so they are written plainly: one block per
// row where a row needs a reduction, a grid-stride loop elsewhere. What they cost is
// their launches: each starts by waiting for the kernel before (launch.cuh).
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/kv-cache.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quantize.cuh"

namespace upg::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return int((n + kThreads - 1) / kThreads < 65535 * 16 ? (n + kThreads - 1) / kThreads : 65535 * 16); }

// The sum of v over the block; `shared` holds blockDim.x / 32 floats.
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

// rmsnorm's threads a row: 1024 where there are fewer rows than a GPU has SMs (a decode
// step's one token a sequence), so that a row's chain of dependent steps (each thread's
// quantization of its 32-column groups, one after the other) is short; 256 for many rows.
constexpr int kWideThreads = 1024;
constexpr int64_t kWideRows = 64;

// out = rmsnorm(x) * w over one row of dim, quantized as token t of a when a.q is set.
// With K > 0 (dim and a's stride at most K T) the row stays in registers (thread i holds
// columns i, T + i, ...; warp w's lanes hold the 32-column groups (T / 32) k + w): the norm
// weight read before the wait for the kernel before (no kernel writes it), one read of x,
// one block reduction, and the stores and quantization from registers, with no load
// after a store (a store to `o` or to the int8 codes may alias a later load, which would
// make every group wait a round trip to L2: 17 us a row of 5120 where it had been so).
// K = 0 reads x twice and its output back.
template <int K, int T>
__device__ inline void rmsnorm_row(const float* x, const float* w, float* o, int64_t dim, float eps, const Int8Acts& a,
                                   int64_t t, float* partial) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if constexpr (K > 0) {
    float wv[K], v[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = int64_t(k) * T + threadIdx.x;
      wv[k] = c < dim ? __ldg(w + c) : 0.0f;
    }
    pdl_wait();
    pdl_trigger();
    float ss = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = int64_t(k) * T + threadIdx.x;
      v[k] = c < dim ? x[c] : 0.0f;
      ss += v[k] * v[k];
    }
    const float scale = rsqrtf(block_sum(ss, partial) / float(dim) + eps);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t c = int64_t(k) * T + threadIdx.x;
      v[k] *= scale * wv[k];
      if (c < dim) o[c] = v[k];
      const int64_t b = int64_t(k) * (T / 32) + warp;
      if (a.q && b < a.stride / 32) quantize32(v[k], lane, a, t, b);
    }
    return;
  }
  pdl_wait();
  pdl_trigger();
  float ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += T) {
    const float xv = x[i];
    ss += xv * xv;
  }
  const float scale = rsqrtf(block_sum(ss, partial) / float(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += T) o[i] = x[i] * scale * w[i];
  if (!a.q) return;
  __syncthreads();
  for (int64_t b = warp; b < a.stride / 32; b += T / 32) {
    const int64_t c = b * 32 + lane;
    quantize32(c < dim ? o[c] : 0.0f, lane, a, t, b);
  }
}

template <int K, int T>
__global__ void __launch_bounds__(T) rmsnorm_kernel(const float* x, const float* w, float* out, int64_t dim, float eps,
                                                    Int8Acts a) {
  __shared__ float partial[T / 32];
  const int64_t t = blockIdx.x;
  rmsnorm_row<K, T>(x + t * dim, w, out + t * dim, dim, eps, a, t, partial);
}

// The rmsnorm kernel with T threads for `need` values a thread (a row of dim, and the
// quantized stride that pads it to 64): the smallest of the built Ks that holds them, or
// K = 0 (reads x twice) past the largest (8 x 1024 or 32 x 256: hidden 8192).
template <int T, int K, int... More>
auto rmsnorm_kernel_for(int64_t need) -> decltype(&rmsnorm_kernel<0, T>) {
  if (need <= K) return rmsnorm_kernel<K, T>;
  if constexpr (sizeof...(More) > 0)
    return rmsnorm_kernel_for<T, More...>(need);
  else
    return rmsnorm_kernel<0, T>;
}

// Rotates one head v (the block's threads) at position pos.
__device__ inline void rotate_head(float* v, int32_t pos, int half, bool interleaved, const float* cos,
                                   const float* sin) {
  const float* c = cos + int64_t(pos) * half;
  const float* s = sin + int64_t(pos) * half;
  const int step = interleaved ? 2 : 1, partner = interleaved ? 1 : half;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float* p = v + i * step;
    const float a = p[0], b = p[partner];
    p[0] = a * c[i] - b * s[i];
    p[partner] = b * c[i] + a * s[i];
  }
}

__global__ void rope_kernel(float* x, const int32_t* positions, int n_heads, int head_dim, int half, bool interleaved,
                            const float* cos, const float* sin) {
  pdl_wait();
  pdl_trigger();
  const int64_t t = blockIdx.y;
  rotate_head(x + (t * n_heads + blockIdx.x) * head_dim, positions[t], half, interleaved, cos, sin);
}

template <bool Half>
__device__ inline void store_row(void* dst, int64_t at, const float* src, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) kv_put<Half>(dst, at + i, src[i]);
}

// Block (h, t): query head h of token t when h < n_heads, else kv head h - n_heads: its
// k rotated, then it and its v stored in the cache.
template <bool Half>
__global__ void rope_store_kernel(float* q, float* k, const float* v, RopeArgs r, KvLayer kv, const int64_t* slots) {
  pdl_wait();
  pdl_trigger();
  const int64_t t = blockIdx.y;
  const int h = blockIdx.x, hd = r.head_dim, half = r.rotary_dim / 2, pos = r.positions[t];
  if (h < r.n_heads) {
    if (half > 0) rotate_head(q + (t * r.n_heads + h) * hd, pos, half, r.interleaved, r.cos, r.sin);
    return;
  }
  const int g = h - r.n_heads, kv_dim = r.n_kv_heads * hd;
  float* kr = k + t * kv_dim + int64_t(g) * hd;
  if (half > 0) rotate_head(kr, pos, half, r.interleaved, r.cos, r.sin);
  __syncthreads();
  const int64_t at = slots[t] * kv_dim + int64_t(g) * hd;
  store_row<Half>(kv.k, at, kr, hd);
  store_row<Half>(kv.v, at, v + t * kv_dim + int64_t(g) * hd, hd);
}

__global__ void silu_mul_kernel(const float* g, const float* u, float* out, int64_t n) {
  pdl_wait();
  pdl_trigger();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// Quantizing: one warp per 32 values (n % 32 == 0), the whole as one row of a.
__global__ void silu_mul_q_kernel(const float* g, const float* u, float* out, int64_t n, Int8Acts a) {
  pdl_wait();
  pdl_trigger();
  const int64_t gw = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  if (gw * 32 >= n) return;
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const float v = g[i] / (1.0f + expf(-g[i])) * u[i];
  out[i] = v;
  quantize32(v, threadIdx.x % 32, a, 0, gw);
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  pdl_wait();
  pdl_trigger();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

// Block (t, j): columns 1024 j .. 1024 j + 1023 of token t's row, four a thread, all
// loaded before any is stored (a store to `out` may alias the table's bytes, which would
// make each load wait for the store before it: 12 us a row of 5120 where it had been so).
constexpr int kEmbedPer = 4;
__global__ void embed_kernel(DeviceWeight w, const int32_t* tokens, float* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t t = blockIdx.x, r = tokens[t];
  const int64_t c0 = int64_t(blockIdx.y) * kThreads * kEmbedPer + threadIdx.x;
  float v[kEmbedPer];
#pragma unroll
  for (int i = 0; i < kEmbedPer; ++i) {
    const int64_t c = c0 + int64_t(i) * kThreads;
    v[i] = c < w.cols ? weight_value(w, r, c) : 0.0f;
  }
#pragma unroll
  for (int i = 0; i < kEmbedPer; ++i) {
    const int64_t c = c0 + int64_t(i) * kThreads;
    if (c < w.cols) out[t * w.cols + c] = v[i];
  }
}

__global__ void kv_store_kernel(KvLayer kv, const int64_t* slots, int kv_dim, const float* k, const float* v) {
  pdl_wait();
  pdl_trigger();
  const int64_t t = blockIdx.x, dst = slots[t] * kv_dim;
  if (kv.half) {
    store_row<true>(kv.k, dst, k + t * kv_dim, kv_dim);
    store_row<true>(kv.v, dst, v + t * kv_dim, kv_dim);
  } else {
    store_row<false>(kv.k, dst, k + t * kv_dim, kv_dim);
    store_row<false>(kv.v, dst, v + t * kv_dim, kv_dim);
  }
}

}  // namespace

void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n, float eps, const Int8Acts& acts,
             const Stream& s) {
  if (n <= 0) return;
  const bool wide = n < kWideRows;
  const int threads = wide ? kWideThreads : kThreads;
  const int64_t need = ((acts.q && acts.stride > dim ? acts.stride : dim) + threads - 1) / threads;
  auto* k = wide ? rmsnorm_kernel_for<kWideThreads, 1, 2, 4, 8>(need)
                 : rmsnorm_kernel_for<kThreads, 2, 4, 8, 16, 20, 32>(need);
  launch("rmsnorm", k, unsigned(n), threads, 0, s, x, w, out, dim, eps, acts);
}

void rope(float* x, const int32_t* positions, int64_t n, int n_heads, int head_dim, int rotary_dim, bool interleaved,
          const float* cos, const float* sin, const Stream& s) {
  if (n <= 0 || rotary_dim < 2) return;
  const int half = rotary_dim / 2;
  launch("rope", rope_kernel, dim3(unsigned(n_heads), unsigned(n)), half < 128 ? 64 : 128, 0, s, x, positions, n_heads,
         head_dim, half, interleaved, cos, sin);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n, const Int8Acts& acts, const Stream& s) {
  if (n <= 0) return;
  if (acts.q)
    launch("silu_mul", silu_mul_q_kernel, unsigned((n + kThreads - 1) / kThreads), kThreads, 0, s, gate, up, out, n,
           acts);
  else
    launch("silu_mul", silu_mul_kernel, blocks_for(n), kThreads, 0, s, gate, up, out, n);
}

void add(float* y, const float* x, int64_t n, const Stream& s) {
  if (n <= 0) return;
  launch("add", add_kernel, blocks_for(n), kThreads, 0, s, y, x, n);
}

void embed(const DeviceWeight& w, const int32_t* tokens, int64_t n, float* out, const Stream& s) {
  if (n <= 0) return;
  const int64_t chunks = (w.cols + kThreads * kEmbedPer - 1) / (kThreads * kEmbedPer);
  launch("embed", embed_kernel, dim3(unsigned(n), unsigned(chunks)), kThreads, 0, s, w, tokens, out);
}

void kv_store(const KvLayer& kv, const int64_t* slots, int64_t n, int kv_dim, const float* k, const float* v,
              const Stream& s) {
  if (n <= 0) return;
  launch("kv_store", kv_store_kernel, unsigned(n), kThreads, 0, s, kv, slots, kv_dim, k, v);
}

void rope_store(float* q, float* k, const float* v, const RopeArgs& r, const KvLayer& kv, const int64_t* slots,
                int64_t n, const Stream& s) {
  if (n <= 0) return;
  const dim3 grid(unsigned(r.n_heads + r.n_kv_heads), unsigned(n));
  const int threads = r.head_dim <= 64 ? 64 : 128;
  if (kv.half)
    launch("rope_store", rope_store_kernel<true>, grid, threads, 0, s, q, k, v, r, kv, slots);
  else
    launch("rope_store", rope_store_kernel<false>, grid, threads, 0, s, q, k, v, r, kv, slots);
}

}  // namespace upg::cuda
