#pragma once
// Reading one weight value or a short run of them in any DeviceWeight form, shared by
// matmul.cu and vector-ops.cu (embed).
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/kernels.h"

namespace upg::cuda {

__device__ inline float half_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ inline float bf16_bits_to_float(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }

// The bits of a code held in planes (block-quant-form.h): 4 .. bits - 1 after the nibbles
// of 5- and 6-bit codes, all of them for 2 and 3 bits; column 64v + k (k < 64) of a row.
__device__ inline int block_plane_bits(const DeviceWeight& w, const uint8_t* row, int64_t v, int k) {
  const int low = w.bits >= 4 ? 4 : 0, planes = w.bits - low;
  const uint8_t* p = row + (low ? w.subs * w.sub / 2 : 0) + v * planes * 8;
  int bits = 0;
  for (int j = 0; j < planes; ++j) bits |= int((p[8 * j + k / 8] >> (k % 8)) & 1) << (low + j);
  return bits;
}

// Column c of a block-form row r: its code (4-bit codes of columns 64v + k and 64v + 32 + k
// share byte 32v + k, low and high nibble; other widths add their planes), then d * code + m.
__device__ inline float block_value(const DeviceWeight& w, int64_t r, int64_t c) {
  const uint8_t* codes = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  int code = w.bits == 8   ? codes[c]
             : w.bits <= 3 ? 0
                           : (codes[(c / 64) * 32 + c % 32] >> (c % 64 < 32 ? 0 : 4)) & 0x0F;
  if (w.bits != 4 && w.bits != 8) code |= block_plane_bits(w, codes, c / 64, int(c % 64));
  if (w.lut) code = w.lut[code];
  const int64_t s = r * w.subs + c / w.sub;
  const float d = half_bits_to_float(w.d[s]);
  const float m = w.has_min ? half_bits_to_float(w.m[s]) : w.offset * d;
  return d * float(code) + m;
}

// Column c of a 2:4 row r: the value of its group of 4 whose position is c % 4, or 0.
__device__ inline float nm24_value(const DeviceWeight& w, int64_t r, int64_t c) {
  const int8_t* vals = static_cast<const int8_t*>(w.data) + r * (w.cols / 2);
  const int64_t g = c / 4;
  const int b = w.positions[r * (w.cols / 8) + g / 2] >> ((g % 2) * 4), p = int(c % 4);
  return (b & 3) == p ? float(vals[2 * g]) : ((b >> 2) & 3) == p ? float(vals[2 * g + 1]) : 0.0f;
}

// W[r, c] as fp32, any form (the per-row scale included).
__device__ inline float weight_value(const DeviceWeight& w, int64_t r, int64_t c) {
  const int64_t i = r * w.cols + c;
  const float s = w.scales ? w.scales[r] : 1.0f;
  switch (w.kind) {
    case WeightKind::F32: return s * static_cast<const float*>(w.data)[i];
    case WeightKind::F16: return s * half_bits_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case WeightKind::BF16: return s * bf16_bits_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case WeightKind::I8: return s * float(static_cast<const int8_t*>(w.data)[i]);
    case WeightKind::Nm24: return s * nm24_value(w, r, c);
    default: return block_value(w, r, c);
  }
}

}  // namespace upg::cuda
