// The int8 kernels in plain C++: the fallback for CPUs without AVX2, and the shapes the
// SIMD targets have no fast path for. Integer sums per 64-column block, then one float
// multiply by the block's activation scale, exactly as the SIMD kernels do.
#include <algorithm>

#include "kernels/cpu/block-quant.h"
#include "kernels/cpu/int8-kernels.h"
#include "upg/core/tensor.h"

namespace upg::kernels {
namespace {

void dense(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* w = m.w + r * m.cols;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const uint8_t* q = a.row(t);
      const float* sx = a.block_scales(t);
      float acc = 0;
      for (int64_t c0 = 0; c0 < m.cols; c0 += kActBlock) {
        int32_t s = 0;
        for (int64_t c = c0; c < std::min(m.cols, c0 + kActBlock); ++c) s += int32_t(w[c]) * (int32_t(q[c]) - 128);
        acc += float(s) * sx[c0 / kActBlock];
      }
      y[t * ldy + r] = acc * m.scales[r];
    }
  }
}

}  // namespace

void nm_scalar(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y,
               int64_t ldy) {
  const int n = m.nm.n, mm = m.nm.m, bits = format::nm_bits(mm);
  const int64_t per_row = format::nm_values_per_row(m.cols, n, mm);
  const int64_t pos_bytes = format::nm_position_bytes_per_row(m.cols, n, mm);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* v = m.nm.values.data() + r * per_row;
    const uint8_t* pos = m.nm.positions.data() + r * pos_bytes;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const uint8_t* q = a.row(t);
      const float* sx = a.block_scales(t);
      float acc = 0;
      int32_t s = 0;
      int64_t block = 0;
      for (int64_t k = 0; k < per_row; ++k) {
        const int64_t c = (k / n) * mm + format::nm_position(pos, k, bits);
        if (c / kActBlock != block) {  // values come in column order: flush the finished block
          acc += float(s) * sx[block];
          s = 0;
          block = c / kActBlock;
        }
        s += int32_t(v[k]) * (int32_t(q[c]) - 128);
      }
      acc += float(s) * sx[block];
      y[t * ldy + r] = acc * m.scales[size_t(r)];
    }
  }
}

// Shared with AVX2, which runs int8 bitmap windows only when a test asks for them.
void bitmap_scalar(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const uint8_t* q = a.row(t);
      const float* sx = a.block_scales(t);
      const uint8_t* v = m.values.data() + m.row_start[size_t(r)];
      float acc = 0;
      for (int64_t w = 0; w < m.windows; ++w) {
        // A window's bits in column order: the block changes once, at bit kActBlock.
        int32_t s[64 / kActBlock] = {};
        for (uint64_t mask = m.masks[size_t(r * m.windows + w)]; mask; mask &= mask - 1) {
          const int bit = __builtin_ctzll(mask);
          s[bit / kActBlock] += (int32_t(*v++) - 128) * (int32_t(q[w * 64 + bit]) - 128);
        }
        for (int b = 0; b < 64 / kActBlock; ++b) acc += float(s[b]) * sx[w * (64 / kActBlock) + b];
      }
      y[t * ldy + r] = acc * m.scales[size_t(r)];
    }
  }
}


// Shared with the SIMD targets, which use it for the layouts they do not vectorize.
void bitmap_f16_scalar(const BitmapMatrix& m, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                       int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * m.cols;
      const uint16_t* v = m.values16.data() + m.row_start[size_t(r)];
      float acc = 0;
      for (int64_t w = 0; w < m.windows; ++w)
        for (uint64_t mask = m.masks[size_t(r * m.windows + w)]; mask; mask &= mask - 1)
          acc += fp16_to_fp32(*v++) * xt[w * 64 + __builtin_ctzll(mask)];
      y[t * ldy + r] = acc * m.scales[size_t(r)];
    }
  }
}

const Int8Kernels kInt8Scalar = {"scalar", dense,   nm_scalar, bitmap_scalar, bitmap_f16_scalar, nullptr, nullptr,
                                 nullptr,  nullptr, block_quant_scalar, nullptr, nullptr};

}  // namespace upg::kernels
