#pragma once
// How the KV cache holds one value (kernels.h, KvLayer): fp16 when Half, else fp32. The
// one place that knows it, for the kernels that write the cache (vector-ops.cu's
// kv_store and rope_store, the decode attention launch that stores its own position)
// and the attention that reads it.
#include <cuda_fp16.h>

#include <cstdint>

namespace upg::cuda {

template <bool Half>
__device__ inline float kv_at(const void* base, int64_t i) {
  if constexpr (Half) return __half2float(static_cast<const __half*>(base)[i]);
  return static_cast<const float*>(base)[i];
}

template <bool Half>
__device__ inline void kv_put(void* base, int64_t i, float x) {
  if constexpr (Half)
    static_cast<__half*>(base)[i] = __float2half(x);
  else
    static_cast<float*>(base)[i] = x;
}

// x as the cache keeps it: what kv_at reads back after kv_put(x).
template <bool Half>
__device__ inline float as_cached(float x) {
  if constexpr (Half) return __half2float(__float2half(x));
  return x;
}

}  // namespace upg::cuda
