#pragma once
// Reading one weight value or a short run of them in any DeviceWeight form, shared by
// matmul.cu and vector-ops.cu (embed).
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/kernels.h"

namespace upg::cuda {

__device__ inline float half_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ inline float bf16_bits_to_float(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }

// The high bits of 5- and 6-bit codes: bits 4 .. bits - 1 of column 64v + k (k < 64) of a
// row, from its planes (bits - 4 words per 64 columns after the nibbles; block-quant-form.h).
__device__ inline int block_high_bits(const DeviceWeight& w, const uint8_t* row, int64_t v, int k) {
  const uint8_t* planes = row + w.subs * w.sub / 2 + v * (w.bits - 4) * 8;
  int high = 0;
  for (int j = 0; j < w.bits - 4; ++j) high |= int((planes[8 * j + k / 8] >> (k % 8)) & 1) << (4 + j);
  return high;
}

// Column c of a block-form row r: its code (4-bit codes of columns 64v + k and 64v + 32 + k
// share byte 32v + k, low and high nibble; 5 and 6 bits add their planes), then d * code + m.
__device__ inline float block_value(const DeviceWeight& w, int64_t r, int64_t c) {
  const uint8_t* codes = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  int code = w.bits == 8 ? codes[c] : (codes[(c / 64) * 32 + c % 32] >> (c % 64 < 32 ? 0 : 4)) & 0x0F;
  if (w.bits == 5 || w.bits == 6) code |= block_high_bits(w, codes, c / 64, int(c % 64));
  if (w.lut) code = w.lut[code];
  const int64_t s = r * w.subs + c / w.sub;
  const float d = half_bits_to_float(w.d[s]);
  const float m = w.has_min ? half_bits_to_float(w.m[s]) : w.offset * d;
  return d * float(code) + m;
}

// W[r, c] as fp32, any form (the per-row I8 scale included).
__device__ inline float weight_value(const DeviceWeight& w, int64_t r, int64_t c) {
  const int64_t i = r * w.cols + c;
  switch (w.kind) {
    case WeightKind::F32: return static_cast<const float*>(w.data)[i];
    case WeightKind::F16: return half_bits_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case WeightKind::BF16: return bf16_bits_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case WeightKind::I8: return w.scales[r] * float(static_cast<const int8_t*>(w.data)[i]);
    default: return block_value(w, r, c);
  }
}

}  // namespace upg::cuda
