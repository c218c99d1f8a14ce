// Repacks an MdCSR matrix into bitmap windows (int8-kernels.h) once at load. The cost is
// one pass over the entries; `upg-bench --benchmark_filter=UPG_Repack` measures it.
#include <algorithm>
#include <bit>
#include <cmath>

#include <fmt/format.h>

#include "kernels/cpu/int8-kernels.h"
#include "upg/error.h"
#include "upg/primes.h"
#include "upg/tensor.h"

namespace upg::kernels {

size_t BitmapMatrix::bytes() const {
  const size_t nvals = size_t(row_start.empty() ? 0 : row_start.back());
  return masks.size() * 8 + nvals * (f16 ? 2 : 1) + scales.size() * 4 + row_start.size() * 8;
}

namespace {

// The unscaled value of MdCSR entry k (validated matrix: indices are in range).
float entry_value(const format::CompressedMatrix& m, size_t k) {
  switch (m.encoding) {
    case format::Encoding::Int8: return float(m.mdcsr.values[k]);
    case format::Encoding::Prime: {
      const uint16_t code = m.mdcsr.prime_indices[k];
      const int index = code & format::kPrimeIndexMask;
      if (index == 0) return 0.0f;
      const float p = float(nth_prime(index));
      return (code & format::kPrimeSignBit) ? -p : p;
    }
    case format::Encoding::Codebook: return m.mdcsr.codebook[m.mdcsr.prime_indices[k]];
  }
  return 0.0f;
}

}  // namespace

BitmapMatrix pack_bitmap(const format::CompressedMatrix& m) {
  if (m.layout != format::Layout::MdCsr)
    throw Error(fmt::format("pack_bitmap: a {} matrix has no bitmap form", format::layout_name(m.layout)));
  BitmapMatrix b;
  b.rows = m.rows;
  b.cols = m.cols;
  b.windows = (m.cols + 63) / 64;
  b.f16 = m.encoding != format::Encoding::Int8;
  b.masks.assign(size_t(b.rows * b.windows), 0);
  b.row_start.assign(size_t(b.rows) + 1, 0);
  b.scales.assign(m.scales.begin(), m.scales.end());
  // Sized once for every stored entry (padding and zeros are dropped, so fewer remain):
  // growing by doubling copied the values again and again on a Phi-4-sized matrix.
  const size_t upper = size_t(m.entries());
  if (!b.f16) {
    b.values.resize(upper + 64, 0);
    uint8_t* out = b.values.data();
    for (int64_t r = 0; r < m.rows; ++r) {
      uint64_t* mask = b.masks.data() + r * b.windows;
      int64_t col = 0;
      for (size_t k = m.mdcsr.row_pointers[size_t(r)]; k < m.mdcsr.row_pointers[size_t(r) + 1]; ++k) {
        col += m.mdcsr.delta_indices[k];
        const int8_t v = m.mdcsr.values[k];
        if (v == 0) continue;  // gap padding, or a kept weight that quantized to zero
        if (col >= m.cols)
          throw Error(fmt::format("pack_bitmap: row {} reaches column {}, past cols {}", r, col, m.cols));
        const uint64_t bit = uint64_t{1} << (col % 64);
        if (mask[col / 64] & bit) throw Error(fmt::format("pack_bitmap: row {} holds column {} twice", r, col));
        mask[col / 64] |= bit;
        *out++ = uint8_t(int(v) + 128);
      }
      b.row_start[size_t(r) + 1] = uint64_t(out - b.values.data());
    }
    // Kernels load whole vectors at a row's current value; 64 bytes of padding keep the
    // last one in bounds.
    b.values.resize(b.row_start.back() + 64);
    b.values.shrink_to_fit();
    return b;
  }
  b.values16.reserve(upper + 32);
  std::vector<float> row_vals;
  for (int64_t r = 0; r < m.rows; ++r) {
    uint64_t* mask = b.masks.data() + r * b.windows;
    row_vals.clear();
    int64_t col = 0;
    // Entries come in column order, so values stay in the order the masks expand them.
    for (size_t k = m.mdcsr.row_pointers[size_t(r)]; k < m.mdcsr.row_pointers[size_t(r) + 1]; ++k) {
      col += m.mdcsr.delta_indices[k];
      if (col >= m.cols)
        throw Error(fmt::format("pack_bitmap: row {} reaches column {}, past cols {}", r, col, m.cols));
      const float v = entry_value(m, k);
      if (v == 0.0f) continue;  // gap padding, or a kept weight that quantized to zero
      const uint64_t bit = uint64_t{1} << (col % 64);
      if (mask[col / 64] & bit) throw Error(fmt::format("pack_bitmap: row {} holds column {} twice", r, col));
      mask[col / 64] |= bit;
      row_vals.push_back(v);
    }
    float amax = 0;
    for (float v : row_vals) amax = std::max(amax, std::fabs(v));
    for (float v : row_vals) b.values16.push_back(fp32_to_fp16(v / amax));
    b.scales[size_t(r)] *= amax;
    b.row_start[size_t(r) + 1] = b.row_start[size_t(r)] + row_vals.size();
  }
  b.values16.resize(b.values16.size() + 32, 0);  // padding, as for int8
  return b;
}

}  // namespace upg::kernels
