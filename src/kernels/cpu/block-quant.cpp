#include "kernels/cpu/block-quant.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "upg/format/ggml-blocks.h"
#include "kernels/cpu/int8-kernels.h"
#include "upg/core/error.h"

namespace upg::kernels {

BlockQuantRows block_quant_form(DType type, int64_t rows, int64_t cols) {
  const format::GgmlBlockInfo info = format::ggml_block_info(type);
  if (cols % info.elems != 0)
    throw Error(fmt::format("{} columns is not a multiple of the {} block size {}", cols, dtype_name(type), info.elems));
  BlockQuantRows m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  m.padded_cols = (cols + 63) / 64 * 64;
  m.sub = info.sub;
  m.bits = info.code_bits <= 3 || (info.code_bits >= 5 && info.code_bits <= 6) ? info.code_bits
           : info.code_bits == 4                                                  ? 4
                                                                                  : 8;
  m.lut = info.lut;
  m.has_min = info.has_min;
  m.offset = float(info.offset);
  m.subs = m.padded_cols / m.sub;
  // The forms for_form instantiates; a new ggml type outside them needs a kernel first.
  const bool known = (m.bits == 8 && m.sub == 32) || (m.bits == 6 && m.sub == 16) || (m.bits == 5 && m.sub == 32) ||
                     (m.bits == 4 && (m.sub == 32 || (m.sub == 16 && !m.lut))) ||
                     ((m.bits == 2 || m.bits == 3) && m.sub == 16 && !m.lut);
  if (!known)
    throw Error(fmt::format("{}: no integer kernel for {}-bit codes in sub-blocks of {}", dtype_name(type), m.bits, m.sub));
  m.codes.assign(size_t(rows * m.row_bytes() + 64), 0);
  m.d.assign(size_t(rows * m.subs), 0);
  if (m.has_min) m.m.assign(size_t(rows * m.subs), 0);
  return m;
}

void pack_block_quant_rows(BlockQuantRows& m, const std::byte* data, int64_t r0, int64_t r1) {
  const format::GgmlBlockInfo info = format::ggml_block_info(m.type);
  const int64_t block_bytes = dtype_block_bytes(m.type), blocks = m.cols / info.elems;
  const int per_block = info.elems / info.sub;
  uint8_t codes[256];
  float d[16], mn[16];
  for (int64_t r = r0; r < r1; ++r) {
    const auto* src = reinterpret_cast<const uint8_t*>(data) + r * blocks * block_bytes;
    uint8_t* out = m.codes.data() + r * m.row_bytes();
    for (int64_t b = 0; b < blocks; ++b, src += block_bytes) {
      try {
        format::unpack_ggml_block(m.type, src, codes, d, mn);
      } catch (const Error& e) {
        throw Error(fmt::format("row {}: {}", r, e.what()));
      }
      for (int s = 0; s < per_block; ++s) {
        const int64_t si = b * per_block + s;
        const uint16_t dh = fp32_to_fp16(d[s]);
        const uint16_t mh = m.has_min ? fp32_to_fp16(mn[s]) : 0;
        const float mv = m.has_min ? mn[s] : 0.0f;
        if (!std::isfinite(fp16_to_fp32(dh)) || !std::isfinite(fp16_to_fp32(mh)))
          throw Error(fmt::format("row {}: block {} has a scale ({} or {}) past fp16's range", r, b, d[s], mv));
        m.d[size_t(r * m.subs + si)] = dh;
        if (m.has_min) m.m[size_t(r * m.subs + si)] = mh;
      }
      for (int i = 0; i < info.elems; ++i) {
        const int64_t c = b * info.elems + i;
        if (m.bits == 8) {
          out[c] = codes[i];
          continue;
        }
        const int low_bits = m.nibble_bits(), planes = m.planes();
        if (low_bits) {
          uint8_t& byte = out[(c / 64) * 32 + c % 32];
          const uint8_t low = codes[i] & 0x0F;
          byte = uint8_t(c % 64 < 32 ? (byte & 0xF0) | low : (byte & 0x0F) | (low << 4));
        }
        uint8_t* high = out + (low_bits ? m.padded_cols / 2 : 0);
        for (int j = 0; j < planes; ++j) {
          uint8_t& plane = high[m.plane_byte(c, j)];
          const uint8_t bit = uint8_t(1u << (c % 8));
          plane = uint8_t((codes[i] >> (low_bits + j)) & 1 ? plane | bit : plane & ~bit);
        }
      }
    }
  }
}

BlockQuantRows int4_block_form(const format::CompressedMatrix& c) {
  const int bits = format::grouped_bits(c.encoding);
  if (c.layout == format::Layout::MdCsr || bits == 0 || (c.layout == format::Layout::NM && bits != 4))
    throw Error(fmt::format("int4_block_form: layout {} with encoding {} has no grouped block form",
                            format::layout_name(c.layout), format::encoding_name(c.encoding)));
  BlockQuantRows m;
  m.type = DType::U8;  // no GGUF type: the form of a UPG file's grouped codes
  m.rows = c.rows;
  m.cols = c.cols;
  m.padded_cols = (c.cols + 63) / 64 * 64;
  m.sub = c.int4.group_size;
  m.bits = bits;  // 4: nibbles; 3 and 2: bit planes, both the file's order
  m.has_min = !c.int4.group_zeros.empty();
  m.offset = float(-format::grouped_default_zero(bits));
  m.subs = format::int4_groups(m.padded_cols, m.sub);
  const int64_t groups = format::int4_groups(c.cols, m.sub);  // the file's; subs may add one of padding
  m.codes.assign(size_t(m.rows * m.row_bytes() + 64), 0);
  if (c.layout == format::Layout::Dense) {
    // The file's rows are the form's rows (ceil(cols / 64) * 8 * bits bytes each).
    std::copy(c.int4.codes.begin(), c.int4.codes.end(), m.codes.begin());
  } else {
    // N:M: each value to its column, and every column a group does not keep to its
    // group's zero point (weight 0).
    const int bits = format::nm_bits(c.nm.m);
    const int64_t per_v = c.values_per_row(), in_bytes = format::int4_row_bytes(per_v),
                  pos_bytes = format::nm_position_bytes_per_row(c.cols, c.nm.n, c.nm.m);
    for (int64_t r = 0; r < m.rows; ++r) {
      uint8_t* out = m.codes.data() + r * m.row_bytes();
      const uint8_t* in = c.int4.codes.data() + r * in_bytes;
      const uint8_t* pos = c.nm.positions.data() + r * pos_bytes;
      for (int64_t col = 0; col < c.cols; ++col) {
        const int64_t g = r * groups + col / m.sub;
        format::set_int4_code(out, col, c.int4.group_zeros.empty() ? format::kInt4DefaultZero : c.int4.group_zeros[size_t(g)]);
      }
      for (int64_t k = 0; k < per_v; ++k)
        format::set_int4_code(out, (k / c.nm.n) * c.nm.m + format::nm_position(pos, k, bits), format::int4_code(in, k));
    }
  }
  m.d.assign(size_t(m.rows * m.subs), 0);
  if (m.has_min) m.m.assign(size_t(m.rows * m.subs), 0);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const uint16_t d = c.int4.group_scales[size_t(r * groups + g)];
      m.d[size_t(r * m.subs + g)] = d;
      if (!m.has_min) continue;
      const float mn = -fp16_to_fp32(d) * float(c.int4.group_zeros[size_t(r * groups + g)]);
      const uint16_t mh = fp32_to_fp16(mn);
      if (!std::isfinite(fp16_to_fp32(mh)))
        throw Error(fmt::format("row {}: group {} has a min {} past fp16's range", r, g, mn));
      m.m[size_t(r * m.subs + g)] = mh;
    }
  return m;
}

BlockQuantRows nibble_form(const BlockQuantRows& m) {
  if (m.bits != 2 && m.bits != 3)
    throw Error(fmt::format("nibble_form: codes of {} bits (2 or 3 widen to nibbles)", m.bits));
  BlockQuantRows out = m;
  out.bits = 4;
  out.codes.assign(size_t(out.rows * out.row_bytes() + 64), 0);
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* in = m.row_codes(r);
    uint8_t* row = out.codes.data() + r * out.row_bytes();
    for (int64_t c = 0; c < m.padded_cols; ++c)
      row[(c / 64) * 32 + c % 32] |= uint8_t(block_quant_code(m, in, c) << (c % 64 < 32 ? 0 : 4));
  }
  return out;
}

BlockQuantRows pack_block_quant(DType type, const std::byte* data, int64_t rows, int64_t cols) {
  BlockQuantRows m = block_quant_form(type, rows, cols);
  pack_block_quant_rows(m, data, 0, rows);
  return m;
}

void block_sums(const QuantizedActs& a, int sub, int64_t subs, std::vector<float>& sums) {
  if (sums.size() < size_t(a.n_tokens * subs)) sums.resize(size_t(a.n_tokens * subs));
  // A sub-block wider than an activation block (int4 groups of 64 or 128) sums its
  // blocks' scaled sums.
  const int64_t part = std::min<int64_t>(sub, kActBlock);
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    const int8_t* q = a.signed_row(t);
    const float* scale = a.block_scales(t);
    for (int64_t s = 0; s < subs; ++s) {
      float total = 0;
      for (int64_t c0 = s * sub; c0 < (s + 1) * sub; c0 += part) {
        int32_t sum = 0;
        for (int64_t c = c0; c < c0 + part; ++c) sum += q[c];
        total += scale[c0 / kActBlock] * float(sum);
      }
      sums[size_t(t * subs + s)] = total;
    }
  }
}

int block_quant_code(const BlockQuantRows& m, const uint8_t* row, int64_t c) {
  if (m.bits == 8) return row[c];
  const int low_bits = m.nibble_bits(), planes = m.planes();
  int code = low_bits ? (row[(c / 64) * 32 + c % 32] >> (c % 64 < 32 ? 0 : 4)) & 0x0F : 0;
  const uint8_t* high = row + (low_bits ? m.padded_cols / 2 : 0);
  for (int j = 0; j < planes; ++j)
    code |= ((high[m.plane_byte(c, j)] >> (c % 8)) & 1) << (low_bits + j);
  return m.lut ? format::kIq4Lut[code] : code;
}

void block_quant_scalar(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1,
                        float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = m.row_codes(r);
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const int8_t* q = a.signed_row(t);
      const float* scale = a.block_scales(t);
      const float* bs = sums + t * m.subs;
      float acc = 0;
      const int64_t part = std::min<int64_t>(m.sub, kActBlock);  // one weight and one activation scale
      for (int64_t s = 0; s < m.subs; ++s) {
        const float d = fp16_to_fp32(m.row_d(r)[s]);
        const float mm = m.has_min ? fp16_to_fp32(m.row_m(r)[s]) : m.offset * d;
        for (int64_t c0 = s * m.sub; c0 < std::min((s + 1) * m.sub, m.padded_cols); c0 += part) {
          int32_t dot = 0;
          for (int64_t c = c0; c < c0 + part; ++c) dot += block_quant_code(m, codes, c) * q[c];
          acc += d * scale[c0 / kActBlock] * float(dot);
        }
        acc += mm * bs[s];
      }
      y[t * ldy + r] = acc;
    }
  }
}

}  // namespace upg::kernels
