// Shape bookkeeping shared by every layout: names, sizes, row slices, views.
#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::format {

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::MdCsr: return "mdcsr";
    case Layout::NM: return "nm";
    case Layout::Dense: return "dense";
  }
  return "?";
}

bool layout_allows(Layout l, Encoding e) {
  switch (l) {
    case Layout::MdCsr: return !is_grouped(e);
    case Layout::NM: return e == Encoding::Int8 || e == Encoding::Int4;
    case Layout::Dense: return is_grouped(e);
  }
  return false;
}

bool int4_group_size_ok(int g) { return g == 32 || g == 64 || g == 128; }
int64_t int4_row_bytes(int64_t values) { return (values + 63) / 64 * 32; }
int64_t int4_groups(int64_t cols, int group_size) { return (cols + group_size - 1) / group_size; }
int64_t grouped_row_bytes(int bits, int64_t values) { return (values + 63) / 64 * 8 * bits; }

int grouped_bits(Encoding e) {
  switch (e) {
    case Encoding::Int4: return 4;
    case Encoding::Int3: return 3;
    case Encoding::Int2: return 2;
    default: return 0;
  }
}

Encoding grouped_encoding(int bits) {
  if (bits == 4) return Encoding::Int4;
  if (bits == 3) return Encoding::Int3;
  if (bits == 2) return Encoding::Int2;
  throw Error(fmt::format("no grouped encoding of {} bits (expected 2, 3 or 4)", bits));
}

const char* encoding_name(Encoding e) {
  switch (e) {
    case Encoding::Int8: return "int8";
    case Encoding::Prime: return "prime";
    case Encoding::Codebook: return "codebook";
    case Encoding::Int4: return "int4";
    case Encoding::Int3: return "int3";
    case Encoding::Int2: return "int2";
  }
  return "?";
}

Layout parse_layout(std::string_view name, const std::string& what) {
  if (name == "mdcsr") return Layout::MdCsr;
  if (name == "nm") return Layout::NM;
  if (name == "dense") return Layout::Dense;
  throw Error(fmt::format("{}: unknown layout \"{}\" (expected mdcsr, nm or dense)", what, name));
}

Encoding parse_encoding(std::string_view name, const std::string& what) {
  if (name == "int8") return Encoding::Int8;
  if (name == "prime") return Encoding::Prime;
  if (name == "codebook") return Encoding::Codebook;
  if (name == "int4") return Encoding::Int4;
  if (name == "int3") return Encoding::Int3;
  if (name == "int2") return Encoding::Int2;
  throw Error(fmt::format("{}: unknown encoding \"{}\" (expected int8, prime, codebook, int4, int3 or int2)", what, name));
}

int nm_bits(int m) {
  switch (m) {
    case 2: return 1;
    case 4: return 2;
    case 8: return 3;
    case 16: return 4;
  }
  throw Error(fmt::format("N:M: M = {} unsupported (expected 2, 4, 8 or 16)", m));
}

int64_t nm_values_per_row(int64_t cols, int n, int m) { return cols / m * n; }

int64_t nm_position_bytes_per_row(int64_t cols, int n, int m) {
  return (nm_values_per_row(cols, n, m) * nm_bits(m) + 7) / 8;
}

int64_t CompressedMatrix::values_per_row() const {
  if (layout == Layout::Dense) return cols;
  if (layout == Layout::NM) return nm_values_per_row(cols, nm.n, nm.m);
  return 0;
}

int64_t CompressedMatrix::entries() const {
  if (layout != Layout::MdCsr) return rows * values_per_row();
  return mdcsr.row_pointers.empty() ? 0 : int64_t(mdcsr.row_pointers.back()) - int64_t(mdcsr.row_pointers.front());
}

size_t CompressedMatrix::bytes() const {
  return scales.size_bytes() + mdcsr.row_pointers.size_bytes() + mdcsr.delta_indices.size_bytes() +
         mdcsr.values.size_bytes() + mdcsr.prime_indices.size_bytes() + mdcsr.codebook.size_bytes() +
         nm.values.size_bytes() + nm.positions.size_bytes() + int4.codes.size_bytes() +
         int4.group_scales.size_bytes() + int4.group_zeros.size_bytes();
}

CompressedMatrix slice_rows(const CompressedMatrix& m, int64_t r0, int64_t n) {
  if (r0 < 0 || n < 0 || r0 + n > m.rows || (!is_grouped(m.encoding) && size_t(m.rows) > m.scales.size()))
    throw Error(fmt::format("slice_rows: rows [{}, {}) outside a matrix of {} rows", r0, r0 + n, m.rows));
  CompressedMatrix s = m;
  s.rows = n;
  if (is_grouped(m.encoding)) {
    const size_t per_c = size_t(grouped_row_bytes(grouped_bits(m.encoding), m.values_per_row())), per_g = size_t(int4_groups(m.cols, m.int4.group_size));
    if (m.int4.codes.size() < size_t(m.rows) * per_c || m.int4.group_scales.size() < size_t(m.rows) * per_g ||
        (!m.int4.group_zeros.empty() && m.int4.group_zeros.size() < size_t(m.rows) * per_g))
      throw Error(fmt::format("slice_rows: grouped parts too small for {} rows", m.rows));
    s.int4.codes = m.int4.codes.subspan(size_t(r0) * per_c, size_t(n) * per_c);
    s.int4.group_scales = m.int4.group_scales.subspan(size_t(r0) * per_g, size_t(n) * per_g);
    if (!m.int4.group_zeros.empty()) s.int4.group_zeros = m.int4.group_zeros.subspan(size_t(r0) * per_g, size_t(n) * per_g);
    if (m.layout == Layout::NM) {
      const size_t per_row_p = size_t(nm_position_bytes_per_row(m.cols, m.nm.n, m.nm.m));
      if (m.nm.positions.size() < size_t(m.rows) * per_row_p)
        throw Error(fmt::format("slice_rows: N:M parts too small for {} rows", m.rows));
      s.nm.positions = m.nm.positions.subspan(size_t(r0) * per_row_p, size_t(n) * per_row_p);
    }
    return s;
  }
  s.scales = m.scales.subspan(size_t(r0), size_t(n));
  if (m.layout == Layout::MdCsr) {
    if (m.mdcsr.row_pointers.size() < size_t(m.rows) + 1)
      throw Error(fmt::format("slice_rows: row_pointers has {} entries for {} rows", m.mdcsr.row_pointers.size(), m.rows));
    // Entry arrays stay whole: row pointers are absolute offsets into them.
    s.mdcsr.row_pointers = m.mdcsr.row_pointers.subspan(size_t(r0), size_t(n) + 1);
  } else {
    // Per-row sizes come from the geometry, not from dividing by rows (which may be 0).
    const size_t per_row_v = size_t(nm_values_per_row(m.cols, m.nm.n, m.nm.m));
    const size_t per_row_p = size_t(nm_position_bytes_per_row(m.cols, m.nm.n, m.nm.m));
    if (m.nm.values.size() < size_t(m.rows) * per_row_v || m.nm.positions.size() < size_t(m.rows) * per_row_p)
      throw Error(fmt::format("slice_rows: N:M parts too small for {} rows", m.rows));
    s.nm.values = m.nm.values.subspan(size_t(r0) * per_row_v, size_t(n) * per_row_v);
    s.nm.positions = m.nm.positions.subspan(size_t(r0) * per_row_p, size_t(n) * per_row_p);
  }
  return s;
}

CompressedMatrix CompressedData::view() const {
  CompressedMatrix v;
  v.layout = layout;
  v.encoding = encoding;
  v.rows = rows;
  v.cols = cols;
  v.scales = scales;
  v.mdcsr.row_pointers = row_pointers;
  v.mdcsr.delta_indices = delta_indices;
  v.mdcsr.prime_indices = prime_indices;
  v.mdcsr.codebook = codebook;
  if (layout == Layout::MdCsr) {
    v.mdcsr.values = values;
  } else if (layout == Layout::NM) {
    v.nm.n = n;
    v.nm.m = m;
    v.nm.values = values;
    v.nm.positions = positions;
  }
  v.int4.group_size = group_size;
  v.int4.codes = q4;
  v.int4.group_scales = group_scales;
  v.int4.group_zeros = group_zeros;
  return v;
}

}  // namespace upg::format
