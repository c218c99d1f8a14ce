// Shape bookkeeping shared by every layout: names, sizes, row slices, views.
#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::format {

const char* layout_name(Layout l) { return l == Layout::MdCsr ? "mdcsr" : "nm"; }

const char* encoding_name(Encoding e) {
  switch (e) {
    case Encoding::Int8: return "int8";
    case Encoding::Prime: return "prime";
    case Encoding::Codebook: return "codebook";
  }
  return "?";
}

Layout parse_layout(std::string_view name, const std::string& what) {
  if (name == "mdcsr") return Layout::MdCsr;
  if (name == "nm") return Layout::NM;
  throw Error(fmt::format("{}: unknown layout \"{}\" (expected mdcsr or nm)", what, name));
}

Encoding parse_encoding(std::string_view name, const std::string& what) {
  if (name == "int8") return Encoding::Int8;
  if (name == "prime") return Encoding::Prime;
  if (name == "codebook") return Encoding::Codebook;
  throw Error(fmt::format("{}: unknown encoding \"{}\" (expected int8, prime or codebook)", what, name));
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

int64_t CompressedMatrix::entries() const {
  if (layout == Layout::NM) return int64_t(nm.values.size());
  return mdcsr.row_pointers.empty() ? 0 : int64_t(mdcsr.row_pointers.back()) - int64_t(mdcsr.row_pointers.front());
}

size_t CompressedMatrix::bytes() const {
  return scales.size_bytes() + mdcsr.row_pointers.size_bytes() + mdcsr.delta_indices.size_bytes() +
         mdcsr.values.size_bytes() + mdcsr.prime_indices.size_bytes() + mdcsr.codebook.size_bytes() +
         nm.values.size_bytes() + nm.positions.size_bytes();
}

CompressedMatrix slice_rows(const CompressedMatrix& m, int64_t r0, int64_t n) {
  if (r0 < 0 || n < 0 || r0 + n > m.rows || size_t(m.rows) > m.scales.size())
    throw Error(fmt::format("slice_rows: rows [{}, {}) outside a matrix of {} rows", r0, r0 + n, m.rows));
  CompressedMatrix s = m;
  s.rows = n;
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
  } else {
    v.nm.n = n;
    v.nm.m = m;
    v.nm.values = values;
    v.nm.positions = positions;
  }
  return v;
}

}  // namespace upg::format
