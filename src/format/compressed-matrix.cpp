// Shape bookkeeping shared by every layout: names, sizes, row slices.
#include <fmt/format.h>

#include "upg/error.h"
#include "upg/format.h"

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
  if (r0 < 0 || n < 0 || r0 + n > m.rows)
    throw Error(fmt::format("slice_rows: rows [{}, {}) outside a matrix of {} rows", r0, r0 + n, m.rows));
  CompressedMatrix s = m;
  s.rows = n;
  s.scales = m.scales.subspan(size_t(r0), size_t(n));
  if (m.layout == Layout::MdCsr) {
    // Entry arrays stay whole: row pointers are absolute offsets into them.
    s.mdcsr.row_pointers = m.mdcsr.row_pointers.subspan(size_t(r0), size_t(n) + 1);
  } else {
    const size_t per_row_v = m.nm.values.size() / size_t(m.rows);
    const size_t per_row_p = m.nm.positions.size() / size_t(m.rows);
    s.nm.values = m.nm.values.subspan(size_t(r0) * per_row_v, size_t(n) * per_row_v);
    s.nm.positions = m.nm.positions.subspan(size_t(r0) * per_row_p, size_t(n) * per_row_p);
  }
  return s;
}

}  // namespace upg::format
