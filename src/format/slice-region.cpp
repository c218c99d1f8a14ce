// A rectangle of a compressed matrix as a matrix of its own: tensor parallelism's
// load-time shards (docs/FORMAT.md, section 8). Each stored code is copied as it is (no
// value is quantized again); only the index structure is rebuilt for the column range,
// through the encoders, which check what they build.
#include <algorithm>
#include <numeric>
#include <utility>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::format {

int64_t column_alignment(const CompressedMatrix& m) {
  const int64_t nm = m.layout == Layout::NM ? m.nm.m : 1;
  const int64_t group = is_grouped(m.encoding) ? m.int4.group_size : 1;
  return std::lcm(nm, group);
}

namespace {

// Whether a stored code means the weight 0 (MdCSR padding, N:M fillers): such entries
// are left out and the encoder pads or fills again where its layout needs it.
bool zero_code(const CompressedMatrix& m, int32_t code, int zero) {
  if (is_grouped(m.encoding)) return code == zero;
  if (m.encoding == Encoding::Prime) return (code & kPrimeIndexMask) == 0;
  return code == 0;  // int8 value, codebook index 0 (codebook[0] == 0)
}

}  // namespace

CompressedData copy_region(const CompressedMatrix& m, int64_t r0, int64_t rows, int64_t c0, int64_t cols,
                           int64_t zero_rows, const std::string& what) {
  if (r0 < 0 || rows < 0 || r0 + rows > m.rows || c0 < 0 || cols < 1 || c0 + cols > m.cols || zero_rows < 0)
    throw Error(fmt::format("{}: rows [{}, {}) and columns [{}, {}) outside its [{}, {}]", what, r0, r0 + rows, c0,
                            c0 + cols, m.rows, m.cols));
  const int64_t align = column_alignment(m);
  if (c0 % align != 0 || (cols % align != 0 && c0 + cols != m.cols))
    throw Error(fmt::format("{}: columns [{}, {}) do not fall on the {}-column groups of its {} {} layout", what, c0,
                            c0 + cols, align, layout_name(m.layout), encoding_name(m.encoding)));
  // int4, int3 and int2 (the grouped encodings) alike.
  const int bits = grouped_bits(m.encoding);
  const bool int4 = bits != 0;
  const int gs = int4 ? m.int4.group_size : 0, default_zero = int4 ? grouped_default_zero(bits) : 0;
  const int64_t per_g = int4 ? int4_groups(m.cols, gs) : 0, g0 = int4 ? c0 / gs : 0,
                ng = int4 ? int4_groups(cols, gs) : 0,
                row_bytes = int4 ? grouped_row_bytes(bits, m.values_per_row()) : 0;
  const bool zero_points = int4 && !m.int4.group_zeros.empty();
  std::vector<SparseRow> out(size_t(rows + zero_rows));
  std::vector<Int4Groups> groups(int4 ? out.size() : 0);
  std::vector<std::pair<uint32_t, int32_t>> kept;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t src = r0 + r;
    SparseRow& s = out[size_t(r)];
    if (!int4) s.scale = m.scales[size_t(src)];
    const uint8_t* q4 = int4 ? m.int4.codes.data() + src * row_bytes : nullptr;
    kept.clear();
    for_each_stored(m, src, [&](int64_t col, int64_t k) {
      if (col < c0 || col >= c0 + cols) return;
      int32_t code = 0, zero = default_zero;
      if (int4) {
        code = grouped_code(q4, k, bits);
        if (zero_points) zero = m.int4.group_zeros[size_t(src * per_g + col / gs)];
      } else if (m.layout == Layout::MdCsr) {
        code = m.encoding == Encoding::Int8 ? int32_t(m.mdcsr.values[size_t(k)]) : int32_t(m.mdcsr.prime_indices[size_t(k)]);
      } else {
        code = m.nm.values[size_t(src * m.values_per_row() + k)];
      }
      // A dense int4 row keeps every column; the sparse layouts drop their zeros.
      if (m.layout != Layout::Dense && zero_code(m, code, zero)) return;
      kept.emplace_back(uint32_t(col - c0), code);
    });
    std::sort(kept.begin(), kept.end());  // N:M stores a group's values in any order
    for (const auto& [col, code] : kept) {
      s.cols.push_back(col);
      s.codes.push_back(code);
    }
    if (int4) {
      const size_t at = size_t(src * per_g + g0);
      groups[size_t(r)].scales.assign(m.int4.group_scales.begin() + ptrdiff_t(at),
                                      m.int4.group_scales.begin() + ptrdiff_t(at + size_t(ng)));
      if (zero_points)
        groups[size_t(r)].zeros.assign(m.int4.group_zeros.begin() + ptrdiff_t(at),
                                       m.int4.group_zeros.begin() + ptrdiff_t(at + size_t(ng)));
    }
  }
  // Zero rows: scale 0 (int4: group scales 0, every code its zero point).
  for (int64_t r = rows; r < rows + zero_rows; ++r) {
    if (!int4) continue;
    groups[size_t(r)].scales.assign(size_t(ng), 0);
    if (zero_points) groups[size_t(r)].zeros.assign(size_t(ng), uint8_t(default_zero));
    if (m.layout == Layout::Dense) {
      out[size_t(r)].codes.assign(size_t(cols), default_zero);
      out[size_t(r)].cols.resize(size_t(cols));
      std::iota(out[size_t(r)].cols.begin(), out[size_t(r)].cols.end(), 0u);
    }
  }
  if (m.layout == Layout::MdCsr)
    return encode_mdcsr(cols, out, m.encoding,
                        m.encoding == Encoding::Codebook
                            ? std::vector<float>(m.mdcsr.codebook.begin(), m.mdcsr.codebook.end())
                            : std::vector<float>{});
  if (m.layout == Layout::Dense) return encode_dense_grouped(m.encoding, cols, out, groups, gs);
  if (int4) return encode_nm_int4(cols, out, groups, m.nm.n, m.nm.m, gs);
  return encode_nm(cols, out, m.nm.n, m.nm.m);
}

}  // namespace upg::format
