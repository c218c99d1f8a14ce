// The loader's checks (docs/FORMAT.md, "Validation"): after validate() passes, every
// decoder and kernel may index the parts without bounds checks.
#include <fmt/format.h>

#include <cmath>

#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/format.h"
#include "upg/format/primes.h"

namespace upg::format {
namespace {

// Sizes beyond this would overflow the products below; no real weight comes close.
constexpr int64_t kMaxDim = int64_t(1) << 31;

template <typename T>
void check_size(const std::string& what, const char* part, std::span<const T> s, int64_t expected) {
  if (int64_t(s.size()) == expected) return;
  if (s.empty()) throw Error(fmt::format("{}: {} is missing (expected {} elements)", what, part, expected));
  throw Error(fmt::format("{}: {} has {} elements, expected {}", what, part, s.size(), expected));
}

template <typename T>
void check_absent(const std::string& what, const char* part, std::span<const T> s, const char* why) {
  if (!s.empty()) throw Error(fmt::format("{}: unexpected part {} ({} elements) for {}", what, part, s.size(), why));
}

// -128 is excluded so that |value| fits in int8 (kernels multiply magnitudes and signs).
void check_int8_values(const std::string& what, const char* part, std::span<const int8_t> v) {
  for (size_t k = 0; k < v.size(); ++k)
    if (v[k] == -128) throw Error(fmt::format("{}: {}[{}] = -128 outside [-127, 127]", what, part, k));
}

void validate_mdcsr(const CompressedMatrix& m, const std::string& what) {
  const MdCsrView& v = m.mdcsr;
  check_absent(what, "nm_values", m.nm.values, "layout mdcsr");
  check_absent(what, "nm_positions", m.nm.positions, "layout mdcsr");
  check_size(what, "row_pointers", v.row_pointers, m.rows + 1);
  const int64_t entries = int64_t(v.delta_indices.size());
  if (v.row_pointers[0] != 0)
    throw Error(fmt::format("{}: row_pointers[0] = {} does not start at 0", what, v.row_pointers[0]));
  for (int64_t r = 1; r <= m.rows; ++r) {
    const uint32_t p = v.row_pointers[size_t(r)], prev = v.row_pointers[size_t(r - 1)];
    if (p < prev) throw Error(fmt::format("{}: row_pointers[{}] = {} decreases from {}", what, r, p, prev));
    if (int64_t(p) > entries)
      throw Error(fmt::format("{}: row_pointers[{}] = {} overruns the {} entries of delta_indices", what, r, p, entries));
  }
  if (int64_t(v.row_pointers[size_t(m.rows)]) != entries)
    throw Error(fmt::format("{}: row_pointers[{}] = {} does not end at the entry count {} of delta_indices", what,
                            m.rows, v.row_pointers[size_t(m.rows)], entries));

  switch (m.encoding) {
    case Encoding::Int8:
      check_size(what, "values", v.values, entries);
      check_absent(what, "prime_indices", v.prime_indices, "encoding int8");
      check_absent(what, "codebook", v.codebook, "encoding int8");
      check_int8_values(what, "values", v.values);
      break;
    case Encoding::Prime:
      check_size(what, "prime_indices", v.prime_indices, entries);
      check_absent(what, "values", v.values, "encoding prime");
      check_absent(what, "codebook", v.codebook, "encoding prime");
      for (size_t k = 0; k < v.prime_indices.size(); ++k)
        if ((v.prime_indices[k] & kPrimeIndexMask) > kPrimeCount)
          throw Error(fmt::format("{}: prime_indices[{}] = {:#06x}: index {} past {}", what, k, v.prime_indices[k],
                                  v.prime_indices[k] & kPrimeIndexMask, kPrimeCount));
      break;
    case Encoding::Codebook: {
      check_size(what, "prime_indices", v.prime_indices, entries);
      check_absent(what, "values", v.values, "encoding codebook");
      if (v.codebook.empty()) throw Error(fmt::format("{}: codebook is missing", what));
      if (int64_t(v.codebook.size()) > kMaxCodebookSize)
        throw Error(fmt::format("{}: codebook has {} entries, more than {}", what, v.codebook.size(), kMaxCodebookSize));
      if (v.codebook[0] != 0.0f) throw Error(fmt::format("{}: codebook[0] = {} must be 0", what, v.codebook[0]));
      for (size_t i = 0; i < v.codebook.size(); ++i)
        if (!std::isfinite(v.codebook[i])) throw Error(fmt::format("{}: codebook[{}] is not finite", what, i));
      for (size_t k = 0; k < v.prime_indices.size(); ++k)
        if (v.prime_indices[k] >= v.codebook.size())
          throw Error(fmt::format("{}: prime_indices[{}] = {} past the codebook's {} entries", what, k,
                                  v.prime_indices[k], v.codebook.size()));
      break;
    }
    default: throw Error(fmt::format("{}: unknown encoding {}", what, int(m.encoding)));
  }

  for (int64_t r = 0; r < m.rows; ++r) {
    int64_t col = 0;
    for (uint32_t k = v.row_pointers[size_t(r)]; k < v.row_pointers[size_t(r + 1)]; ++k) {
      const uint8_t d = v.delta_indices[k];
      if (d == 0 && k != v.row_pointers[size_t(r)])
        throw Error(fmt::format("{}: delta_indices[{}] = 0 repeats column {} of row {}", what, k, col, r));
      col += d;
      if (col >= m.cols)
        throw Error(fmt::format("{}: delta_indices[{}] puts row {} at column {}, past cols {}", what, k, r, col, m.cols));
    }
  }
}

// The parts of grouped values (docs/FORMAT.md 4.3) for `values` values per row.
void validate_int4(const CompressedMatrix& m, int64_t values, const std::string& what) {
  const Int4View& v = m.int4;
  const int bits = grouped_bits(m.encoding), max_code = (1 << bits) - 1;
  const std::string codes = fmt::format("q{}", bits);
  if (!int4_group_size_ok(v.group_size))
    throw Error(fmt::format("{}: group_size = {} (expected 32, 64 or 128)", what, v.group_size));
  if (m.layout == Layout::NM && v.group_size % m.nm.m != 0)
    throw Error(fmt::format("{}: group_size = {} is not a multiple of M = {}", what, v.group_size, m.nm.m));
  check_absent(what, "scales", m.scales,
               fmt::format("encoding {} (its scales are group_scales)", encoding_name(m.encoding)).c_str());
  const int64_t row_bytes = grouped_row_bytes(bits, values), groups = int4_groups(m.cols, v.group_size);
  check_size(what, codes.c_str(), v.codes, m.rows * row_bytes);
  check_size(what, "group_scales", v.group_scales, m.rows * groups);
  if (!v.group_zeros.empty()) check_size(what, "group_zeros", v.group_zeros, m.rows * groups);
  for (size_t g = 0; g < v.group_scales.size(); ++g)
    if (!std::isfinite(fp16_to_fp32(v.group_scales[g])))
      throw Error(fmt::format("{}: group_scales[{}] = {:#06x} is not finite", what, g, v.group_scales[g]));
  for (size_t g = 0; g < v.group_zeros.size(); ++g)
    if (v.group_zeros[g] > max_code)
      throw Error(fmt::format("{}: group_zeros[{}] = {} outside 0..{}", what, g, v.group_zeros[g], max_code));
  // Codes past the row's values, in its last 64-value block, are 0: the stored bytes are
  // canonical, and kernels may run whole 64-code vectors.
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* row = v.codes.data() + r * row_bytes;
    for (int64_t k = values; k < row_bytes * 8 / bits; ++k)
      if (grouped_code(row, k, bits) != 0)
        throw Error(fmt::format("{}: {} row {}: padding code {} (past the row's {} values) is {}, not 0", what, codes,
                                r, k, values, grouped_code(row, k, bits)));
  }
}

void validate_nm(const CompressedMatrix& m, const std::string& what) {
  const NMView& v = m.nm;
  const bool int4 = m.encoding == Encoding::Int4;
  if (v.m != 2 && v.m != 4 && v.m != 8 && v.m != 16)
    throw Error(fmt::format("{}: N:M with M = {} unsupported (expected 2, 4, 8 or 16)", what, v.m));
  if (v.n < 1 || v.n >= v.m) throw Error(fmt::format("{}: N:M with N = {} outside 1..{}", what, v.n, v.m - 1));
  if (m.cols % v.m != 0) throw Error(fmt::format("{}: cols {} is not a multiple of M = {}", what, m.cols, v.m));
  check_absent(what, "row_pointers", m.mdcsr.row_pointers, "layout nm");
  check_absent(what, "delta_indices", m.mdcsr.delta_indices, "layout nm");
  check_absent(what, "values", m.mdcsr.values, "layout nm");
  check_absent(what, "prime_indices", m.mdcsr.prime_indices, "layout nm");
  check_absent(what, "codebook", m.mdcsr.codebook, "layout nm");
  const int64_t per_v = nm_values_per_row(m.cols, v.n, v.m), per_p = nm_position_bytes_per_row(m.cols, v.n, v.m);
  check_size(what, "nm_positions", v.positions, m.rows * per_p);
  if (int4) {
    check_absent(what, "nm_values", v.values, "encoding int4 (its values are q4)");
    validate_int4(m, per_v, what);
  } else {
    check_size(what, "nm_values", v.values, m.rows * per_v);
    check_int8_values(what, "nm_values", v.values);
  }

  const int bits = nm_bits(v.m);
  const int64_t used_bits = per_v * bits;
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* pos = v.positions.data() + r * per_p;
    for (int64_t g = 0; g < m.cols / v.m; ++g) {
      uint32_t seen = 0;
      for (int s = 0; s < v.n; ++s) {
        const int64_t k = g * v.n + s;
        const int p = nm_position(pos, k, bits);
        if (seen & (1u << p))
          throw Error(fmt::format("{}: nm_positions row {} value {}: position {} used twice in group {}", what, r, k,
                                  p, g));
        seen |= 1u << p;
      }
    }
    // A row's last byte may hold unused high bits; they must be zero so the stored
    // bytes are canonical (a writer cannot smuggle data there).
    if (used_bits % 8 != 0 && (pos[per_p - 1] >> (used_bits % 8)) != 0)
      throw Error(fmt::format("{}: nm_positions row {}: unused high bits of the last byte are not zero", what, r));
  }
}

void validate_dense(const CompressedMatrix& m, const std::string& what) {
  check_absent(what, "row_pointers", m.mdcsr.row_pointers, "layout dense");
  check_absent(what, "delta_indices", m.mdcsr.delta_indices, "layout dense");
  check_absent(what, "values", m.mdcsr.values, "layout dense");
  check_absent(what, "prime_indices", m.mdcsr.prime_indices, "layout dense");
  check_absent(what, "codebook", m.mdcsr.codebook, "layout dense");
  check_absent(what, "nm_values", m.nm.values, "layout dense");
  check_absent(what, "nm_positions", m.nm.positions, "layout dense");
  validate_int4(m, m.cols, what);
}

}  // namespace

void validate(const CompressedMatrix& m, const std::string& what) {
  if (m.rows < 0 || m.rows >= kMaxDim || m.cols < 1 || m.cols >= kMaxDim)
    throw Error(fmt::format("{}: shape [{}, {}] out of range", what, m.rows, m.cols));
  if (m.layout > Layout::Dense) throw Error(fmt::format("{}: unknown layout {}", what, int(m.layout)));
  if (m.encoding > Encoding::Int2) throw Error(fmt::format("{}: unknown encoding {}", what, int(m.encoding)));
  if (!layout_allows(m.layout, m.encoding))
    throw Error(fmt::format("{}: layout {} does not take encoding {}", what, layout_name(m.layout),
                            encoding_name(m.encoding)));
  if (!is_grouped(m.encoding)) {
    check_size(what, "scales", m.scales, m.rows);
    check_absent(what, "q4", m.int4.codes, "an encoding without groups");
    check_absent(what, "group_scales", m.int4.group_scales, "an encoding without groups");
    check_absent(what, "group_zeros", m.int4.group_zeros, "an encoding without groups");
  }
  for (size_t r = 0; r < m.scales.size(); ++r)
    if (!std::isfinite(m.scales[r])) throw Error(fmt::format("{}: scales[{}] = {} is not finite", what, r, m.scales[r]));
  switch (m.layout) {
    case Layout::MdCsr: validate_mdcsr(m, what); break;
    case Layout::NM: validate_nm(m, what); break;
    case Layout::Dense: validate_dense(m, what); break;
    default: throw Error(fmt::format("{}: unknown layout {}", what, int(m.layout)));
  }
}

}  // namespace upg::format
