// Repacks compressed matrices into their execution forms (int8-kernels.h) once at load:
// bitmap windows (MdCSR, targets without an expand) and 16-row bitmap tiles (any layout).
// The cost is one pass over the entries; it shows in the load time `UPG_Loading` measures.
#include <algorithm>
#include <bit>
#include <cmath>

#include <fmt/format.h>

#include "kernels/cpu/int8-kernels.h"
#include "upg/core/error.h"
#include "upg/core/tensor.h"

namespace upg::kernels {

size_t BitmapMatrix::bytes() const {
  const size_t nvals = size_t(row_start.empty() ? 0 : row_start.back());
  return masks.size() * 8 + nvals * (f16 ? 2 : 1) + scales.size() * 4 + row_start.size() * 8;
}

namespace {

// Calls fn(col, k) for each entry row r stores (k: its index in the layout's value array).
// N:M fillers come too, as zero values.
template <class Fn>
void for_each_entry(const format::CompressedMatrix& m, int64_t r, Fn&& fn) {
  if (m.layout == format::Layout::NM) {
    const int n = m.nm.n, mm = m.nm.m, bits = format::nm_bits(mm);
    const int64_t per_row = format::nm_values_per_row(m.cols, n, mm);
    const uint8_t* pos = m.nm.positions.data() + r * format::nm_position_bytes_per_row(m.cols, n, mm);
    for (int64_t g = 0, k = 0; k < per_row; ++g)
      for (int i = 0; i < n; ++i, ++k) fn(g * mm + format::nm_position(pos, k, bits), size_t(r * per_row + k));
    return;
  }
  int64_t col = 0;
  for (size_t k = m.mdcsr.row_pointers[size_t(r)]; k < m.mdcsr.row_pointers[size_t(r) + 1]; ++k)
    fn(col += m.mdcsr.delta_indices[k], k);
}

// Walks row r's stored entries in column order and, for each nonzero one (padding and
// weights that quantized to zero are dropped), sets its bit in `mask` (the row's
// windows) and calls emit(k, value). value(k) is the entry's unscaled value.
template <class Value, class Emit>
void walk_row(const format::CompressedMatrix& m, int64_t r, uint64_t* mask, Value&& value, Emit&& emit) {
  for_each_entry(m, r, [&](int64_t col, size_t k) {
    if (col >= m.cols) throw Error(fmt::format("pack_bitmap: row {} reaches column {}, past cols {}", r, col, m.cols));
    const auto v = value(k);
    if (v == 0) return;
    const uint64_t bit = uint64_t{1} << (col % 64);
    if (mask[col / 64] & bit) throw Error(fmt::format("pack_bitmap: row {} holds column {} twice", r, col));
    mask[col / 64] |= bit;
    emit(v);
  });
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
  // Kernels load whole vectors at a row's current value: 64 bytes of padding keep the
  // last one in bounds.
  if (!b.f16) {
    // Sized once for every stored entry, then cut to the kept ones: growing by doubling
    // copied the values again and again on a Phi-4-sized matrix.
    b.values.resize(size_t(m.entries()) + 64, 0);
    uint8_t* out = b.values.data();
    for (int64_t r = 0; r < m.rows; ++r) {
      walk_row(m, r, b.masks.data() + r * b.windows, [&](size_t k) { return m.mdcsr.values[k]; },
               [&](int8_t v) { *out++ = uint8_t(int(v) + 128); });
      b.row_start[size_t(r) + 1] = uint64_t(out - b.values.data());
    }
    b.values.resize(b.row_start.back() + 64);
    b.values.shrink_to_fit();
    return b;
  }
  b.values16.reserve(size_t(m.entries()) + 32);
  std::vector<float> row_vals;
  for (int64_t r = 0; r < m.rows; ++r) {
    row_vals.clear();
    walk_row(m, r, b.masks.data() + r * b.windows, [&](size_t k) { return format::mdcsr_value(m, k); },
             [&](float v) { row_vals.push_back(v); });
    float amax = 0;
    for (float v : row_vals) amax = std::max(amax, std::fabs(v));
    for (float v : row_vals) b.values16.push_back(fp32_to_fp16(v / amax));
    b.scales[size_t(r)] *= amax;
    b.row_start[size_t(r) + 1] = b.row_start[size_t(r)] + row_vals.size();
  }
  b.values16.resize(b.values16.size() + 32, 0);
  return b;
}

// Puts row i (matrix row r) of a 16-row group's entry (col, v) in the group's masks and
// tiles, as BitmapRows16 numbers the bits. Zero values (padding, N:M fillers, weights
// that quantized to zero) are dropped.
template <bool Wide>
inline void place(uint64_t* masks, int32_t* tiles, int64_t r, int64_t i, int64_t col, int64_t cols, int32_t v) {
  if (col >= cols) throw Error(fmt::format("pack_bitmap_rows16: row {} reaches column {}, past cols {}", r, col, cols));
  if (v == 0) return;
  const int c = int(col % 4);
  const int bit = Wide ? 32 * (c / 2) + int(2 * i) + c % 2 : int(4 * i) + c;
  if (masks[col / 4] >> bit & 1) throw Error(fmt::format("pack_bitmap_rows16: row {} holds column {} twice", r, col));
  masks[col / 4] |= uint64_t{1} << bit;
  tiles[col / 4 * 64 + bit] = v;
}

BitmapRows16 pack_bitmap_rows16(const format::CompressedMatrix& m) {
  BitmapRows16 p;
  p.rows = m.rows;
  p.cols = m.cols;
  p.groups = (m.rows + 15) / 16;
  p.quads = (m.cols + 31) / 32 * 8;
  p.wide = m.encoding != format::Encoding::Int8;
  p.masks.assign(size_t(p.groups * p.quads), 0);
  p.group_start.assign(size_t(p.groups) + 1, 0);
  p.scales.assign(size_t(p.groups * 16), 0.0f);
  std::copy(m.scales.begin(), m.scales.end(), p.scales.begin());
  if (p.wide) p.values16.reserve(size_t(m.entries()) + 32);
  else p.values.reserve(size_t(m.entries()) + 64);
  // One group's tiles as they will be expanded, [quads, 64 bits] (only kept ones are read).
  std::vector<int32_t> tiles(size_t(p.quads * 64));
  for (int64_t g = 0; g < p.groups; ++g) {
    uint64_t* masks = p.masks.data() + g * p.quads;
    for (int64_t i = 0; i < 16 && 16 * g + i < m.rows; ++i) {
      const int64_t r = 16 * g + i;
      // Wide values: int16 of the row's largest magnitude.
      float amax = 0;
      if (p.wide) for_each_entry(m, r, [&](int64_t, size_t k) { amax = std::max(amax, std::fabs(format::mdcsr_value(m, k))); });
      if (amax > 0) p.scales[size_t(r)] *= amax / 32767.0f;
      // By value into the per-entry lambdas, so they read locals and not this frame.
      uint64_t* mk = masks;
      int32_t* tl = tiles.data();
      const int64_t cols = m.cols;
      if (p.wide) {
        for_each_entry(m, r, [=, &m](int64_t col, size_t k) {
          place<true>(mk, tl, r, i, col, cols, int32_t(std::lrint(format::mdcsr_value(m, k) / amax * 32767.0f)));
        });
      } else {
        const int8_t* vals = m.layout == format::Layout::NM ? m.nm.values.data() : m.mdcsr.values.data();
        for_each_entry(m, r, [=](int64_t col, size_t k) { place<false>(mk, tl, r, i, col, cols, vals[k]); });
      }
    }
    for (int64_t q = 0; q < p.quads; ++q)
      for (uint64_t bits = masks[q]; bits; bits &= bits - 1) {
        const int32_t v = tiles[size_t(q * 64 + std::countr_zero(bits))];
        if (p.wide) p.values16.push_back(int16_t(v));
        else p.values.push_back(uint8_t(v + 128));
      }
    p.group_start[size_t(g) + 1] = p.wide ? p.values16.size() : p.values.size();
  }
  // Kernels load whole vectors at a group's current value.
  if (p.wide) p.values16.resize(p.values16.size() + 32, 0);
  else p.values.resize(p.values.size() + 64, 0);
  return p;
}



int nm24_register_byte(int k) {
  const int group = k / 2, slot = k % 2;
  const int src = group / 8, lane = group % 8 / 4, gi = group % 4;  // source half, 128-bit lane, group in lane
  return 16 * lane + 4 * (2 * (gi / 2) + src) + 2 * (gi % 2) + slot;
}

int nm24_pair_code(int p0, int p1) {
  // Pairs in the order (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3): those whose lower
  // column is p0 start at code 0, 3 or 5.
  static constexpr int kFirst[3] = {0, 3, 5};
  return kFirst[p0] + p1 - p0 - 1;
}

// Calls fn(r, g, p0, p1, v0, v1) for every 2:4 group g of every row r of m: its two
// positions in column order (p0 < p1) with their values. `who` names the caller in the
// errors: m is not 2:4 int8, or a group names one position twice (it has no pair code).
template <class Fn>
static void for_each_nm24_group(const format::CompressedMatrix& m, const char* who, Fn&& fn) {
  if (m.layout != format::Layout::NM || m.nm.n != 2 || m.nm.m != 4 || m.encoding != format::Encoding::Int8)
    throw Error(fmt::format("{}: only a 2:4 int8 matrix has this form", who));
  const int64_t per_row = format::nm_values_per_row(m.cols, 2, 4);
  for (int64_t r = 0; r < m.rows; ++r) {
    const int8_t* vals = m.nm.values.data() + r * per_row;
    const uint8_t* pos = m.nm.positions.data() + r * format::nm_position_bytes_per_row(m.cols, 2, 4);
    for (int64_t k = 0; k < per_row; k += 2) {
      int p0 = format::nm_position(pos, k, 2), p1 = format::nm_position(pos, k + 1, 2);
      int8_t v0 = vals[k], v1 = vals[k + 1];
      if (p0 == p1) throw Error(fmt::format("{}: row {} group {}: position {} used twice", who, r, k / 2, p0));
      if (p0 > p1) {
        std::swap(p0, p1);
        std::swap(v0, v1);
      }
      fn(r, k / 2, p0, p1, v0, v1);
    }
  }
}

// Ors a 3-bit pair code into a little-endian bit stream at `bit` (it may straddle two bytes).
static void put_code(uint8_t* stream, int64_t bit, int code) {
  const uint32_t c = uint32_t(code) << (bit % 8);
  stream[bit / 8] |= uint8_t(c);
  if (c >> 8) stream[bit / 8 + 1] |= uint8_t(c >> 8);
}

Nm24Rows pack_nm24(const format::CompressedMatrix& m) {
  Nm24Rows p;
  p.rows = m.rows;
  p.cols = m.cols;
  p.windows = (m.cols + 63) / 64;
  const int64_t padded = (p.rows + 3) / 4 * 4;
  p.values.assign(size_t(padded * p.windows * 32), 0);
  // The kernel reads each row's 6 code bytes as one 8-byte word.
  p.codes.assign(size_t(padded * p.windows * kNm24CodeBytes + 2), 0);
  for_each_nm24_group(m, "pack_nm24", [&](int64_t r, int64_t group, int p0, int p1, int8_t v0, int8_t v1) {
    const int64_t w = group / 16, g = group % 16;
    const size_t at = p.at(r, w);
    p.values[32 * at + size_t(nm24_register_byte(int(2 * g)))] = v0;
    p.values[32 * at + size_t(nm24_register_byte(int(2 * g) + 1))] = v1;
    put_code(p.codes.data() + at * kNm24CodeBytes, 3 * g, nm24_pair_code(p0, p1));
  });
  p.scales.assign(m.scales.begin(), m.scales.end());
  return p;
}

Nm24Rows16 pack_nm24_rows16(const format::CompressedMatrix& m) {
  Nm24Rows16 p;
  p.rows = m.rows;
  p.cols = m.cols;
  p.groups = (m.rows + 15) / 16;
  p.blocks = (m.cols + 31) / 32;
  p.data.assign(size_t(p.groups * p.blocks * kNm24RecordBytes + 64), 0);
  for_each_nm24_group(m, "pack_nm24_rows16", [&](int64_t r, int64_t group, int p0, int p1, int8_t v0, int8_t v1) {
    const int64_t i = r % 16, octet = group % 8 / 2, h = group % 2;
    uint8_t* rec = p.data.data() + (r / 16 * p.blocks + group / 8) * kNm24RecordBytes;
    uint8_t* v = rec + kNm24CodeBlockBytes + 64 * octet + 4 * i + 2 * h;
    v[0] = uint8_t(v0);
    v[1] = uint8_t(v1);
    put_code(rec, 48 * (i / 2) + 12 * octet + 6 * (i % 2) + 3 * h, nm24_pair_code(p0, p1));
  });
  p.scales.assign(size_t(p.groups * 16), 0.0f);
  std::copy(m.scales.begin(), m.scales.end(), p.scales.begin());
  return p;
}

// A zero DenseRows4 of this shape, rows padded to whole groups of 4 and columns to whole
// blocks, with these row scales.
static DenseRows4 zero_rows4(int64_t rows, int64_t cols, const float* scales) {
  DenseRows4 p;
  p.rows = rows;
  p.cols = cols;
  p.blocks = (cols + 31) / 32;
  p.w.assign(size_t((rows + 3) / 4 * 4 * p.blocks * 32), 0);
  p.scales.assign(scales, scales + rows);
  return p;
}

std::vector<int8_t> dense_int8_codes(const format::CompressedMatrix& m) {
  if (m.encoding != format::Encoding::Int8 || m.layout == format::Layout::Dense)
    throw Error(fmt::format("dense_int8_codes: {} {} values are not int8", format::layout_name(m.layout),
                            format::encoding_name(m.encoding)));
  std::vector<int8_t> w(size_t(m.rows * m.cols), 0);
  const int8_t* vals = m.layout == format::Layout::NM ? m.nm.values.data() : m.mdcsr.values.data();
  for (int64_t r = 0; r < m.rows; ++r)
    for_each_entry(m, r, [&](int64_t col, size_t k) {
      if (col >= m.cols)
        throw Error(fmt::format("dense_int8_codes: row {} reaches column {}, past cols {}", r, col, m.cols));
      if (vals[k] != 0) w[size_t(r * m.cols + col)] = vals[k];
    });
  return w;
}

DenseRows4 pack_dense_rows4(const format::CompressedMatrix& m) {
  const std::vector<int8_t> codes = dense_int8_codes(m);
  return pack_dense_rows4(DenseI8{codes.data(), m.scales.data(), m.rows, m.cols});
}

DenseRows4 pack_dense_rows4(const DenseI8& m) {
  DenseRows4 p = zero_rows4(m.rows, m.cols, m.scales);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t b = 0; b < p.blocks; ++b) {
      const int64_t c0 = 32 * b, n = std::min<int64_t>(32, m.cols - c0);
      std::copy_n(m.w + r * m.cols + c0, n, p.w.data() + p.offset(r, b));
    }
  return p;
}



DenseF16Rows pack_dense_f16(const format::CompressedMatrix& m) {
  DenseF16Rows p;
  p.rows = m.rows;
  p.cols = m.cols;
  p.w.resize(size_t(m.rows * m.cols));
  p.scales.resize(size_t(m.rows));
  std::vector<float> row(size_t(m.cols));
  for (int64_t r = 0; r < m.rows; ++r) {
    format::decode_row(m, r, row.data());
    float amax = 0;
    for (float v : row) amax = std::max(amax, std::fabs(v));
    p.scales[size_t(r)] = amax;
    for (int64_t c = 0; c < m.cols; ++c) p.w[size_t(r * m.cols + c)] = fp32_to_fp16(amax > 0 ? row[size_t(c)] / amax : 0.0f);
  }
  return p;
}

}  // namespace upg::kernels
