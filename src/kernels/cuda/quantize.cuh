#pragma once
// One warp's quantization of 32 activations into Int8Acts (kernels.h), as the CPU's
// int8 kernels quantize them (kernels/cpu/int8-quantize.cpp): scale max |x| / 127,
// round to nearest even. Shared by the quantizer and the ops that quantize what they
// write (rmsnorm, silu_mul), so the next matmul needs no pass of its own.
#include <cstdint>

#include "kernels/cuda/kernels.h"

namespace upg::cuda {

// v: this lane's value of columns 32b .. 32b + 31 of token t (0 past the row's end).
__device__ inline void quantize32(float v, int lane, const Int8Acts& a, int64_t t, int64_t b) {
  float amax = fabsf(v);
  for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float inv = amax > 0 ? 127.0f / amax : 0.0f;
  const int q = int(rintf(v * inv));
  const int64_t c = b * 32 + lane;
  a.q[t * a.stride + c] = int8_t(q);
  int s = q;
  for (int o = 8; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);  // within each half
  if (lane == 0) a.scales[t * (a.stride / 32) + b] = amax / 127.0f;
  if (lane % 16 == 0) a.sums[t * (a.stride / 16) + c / 16] = s;
}

}  // namespace upg::cuda
