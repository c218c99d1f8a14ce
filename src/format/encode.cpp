// Building the stored layouts from kept weights (the compressor's last step). Inputs are
// checked here so a compressor bug fails loudly instead of writing a file the loader
// would reject later.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "upg/core/error.h"
#include "upg/format/format.h"
#include "upg/format/primes.h"

namespace upg::format {
namespace {

// Columns strictly ascending and inside the matrix, one code per column.
void check_row_columns(const SparseRow& row, int64_t r, int64_t cols, const char* who) {
  if (row.cols.size() != row.codes.size())
    throw Error(fmt::format("{}: row {} has {} columns but {} codes", who, r, row.cols.size(), row.codes.size()));
  if (!std::isfinite(row.scale)) throw Error(fmt::format("{}: row {} scale {} is not finite", who, r, row.scale));
  for (size_t k = 0; k < row.cols.size(); ++k) {
    if (int64_t(row.cols[k]) >= cols)
      throw Error(fmt::format("{}: row {} column {} is past cols {}", who, r, row.cols[k], cols));
    if (k > 0 && row.cols[k] <= row.cols[k - 1])
      throw Error(fmt::format("{}: row {} columns not ascending ({} after {})", who, r, row.cols[k], row.cols[k - 1]));
  }
}

void check_int8(int32_t code, int64_t r, const char* who) {
  if (code < -127 || code > 127)
    throw Error(fmt::format("{}: row {} int8 code {} outside [-127, 127]", who, r, code));
}

}  // namespace

CompressedData encode_mdcsr(int64_t cols, const std::vector<SparseRow>& rows, Encoding enc,
                            std::vector<float> codebook) {
  constexpr const char* who = "encode_mdcsr";
  if (cols < 1) throw Error(fmt::format("{}: cols = {} must be positive", who, cols));
  if (enc == Encoding::Codebook) {
    if (codebook.empty() || int64_t(codebook.size()) > kMaxCodebookSize)
      throw Error(fmt::format("{}: codebook size {} outside 1..{}", who, codebook.size(), kMaxCodebookSize));
    if (codebook[0] != 0.0f) throw Error(fmt::format("{}: codebook[0] = {} must be 0", who, codebook[0]));
    for (size_t i = 0; i < codebook.size(); ++i)
      if (!std::isfinite(codebook[i])) throw Error(fmt::format("{}: codebook[{}] is not finite", who, i));
  } else if (!codebook.empty()) {
    throw Error(fmt::format("{}: a codebook was given for encoding {}", who, encoding_name(enc)));
  }

  CompressedData d;
  d.layout = Layout::MdCsr;
  d.encoding = enc;
  d.rows = int64_t(rows.size());
  d.cols = cols;
  d.codebook = std::move(codebook);
  d.scales.reserve(rows.size());
  d.row_pointers.reserve(rows.size() + 1);
  d.row_pointers.push_back(0);

  auto push = [&](uint8_t delta, int32_t code) {
    d.delta_indices.push_back(delta);
    if (enc == Encoding::Int8)
      d.values.push_back(int8_t(code));
    else
      d.prime_indices.push_back(uint16_t(code));
  };

  for (size_t r = 0; r < rows.size(); ++r) {
    const SparseRow& row = rows[r];
    check_row_columns(row, int64_t(r), cols, who);
    for (int32_t code : row.codes) {
      if (enc == Encoding::Int8) {
        check_int8(code, int64_t(r), who);
      } else if (enc == Encoding::Prime) {
        if (code < 0 || code > 0xffff || (code & kPrimeIndexMask) > kPrimeCount)
          throw Error(fmt::format("{}: row {} prime code {:#x}: index past {}", who, r, code, kPrimeCount));
      } else if (code < 0 || code >= int64_t(d.codebook.size())) {
        throw Error(fmt::format("{}: row {} codebook index {} outside 0..{}", who, r, code, d.codebook.size() - 1));
      }
    }
    uint32_t prev = 0;
    for (size_t k = 0; k < row.cols.size(); ++k) {
      uint32_t gap = row.cols[k] - prev;
      // Padding carries the zero of every encoding (int8 0, prime index 0, codebook 0).
      for (; gap > 255; gap -= 255) push(255, 0);
      push(uint8_t(gap), row.codes[k]);
      prev = row.cols[k];
    }
    if (d.delta_indices.size() > std::numeric_limits<uint32_t>::max())
      throw Error(fmt::format("{}: more than 2^32 - 1 entries (U32 row pointers)", who));
    d.row_pointers.push_back(uint32_t(d.delta_indices.size()));
    d.scales.push_back(row.scale);
  }
  return d;
}

CompressedData encode_nm(int64_t cols, const std::vector<SparseRow>& rows, int n, int m) {
  constexpr const char* who = "encode_nm";
  const int bits = nm_bits(m);
  if (n < 1 || n >= m) throw Error(fmt::format("{}: N = {} outside 1..{} for M = {}", who, n, m - 1, m));
  if (cols < 1 || cols % m != 0)
    throw Error(fmt::format("{}: cols = {} is not a positive multiple of M = {}", who, cols, m));

  CompressedData d;
  d.layout = Layout::NM;
  d.encoding = Encoding::Int8;
  d.rows = int64_t(rows.size());
  d.cols = cols;
  d.n = n;
  d.m = m;
  const int64_t per_row_v = nm_values_per_row(cols, n, m);
  const int64_t per_row_p = nm_position_bytes_per_row(cols, n, m);
  d.values.assign(size_t(d.rows * per_row_v), 0);
  d.positions.assign(size_t(d.rows * per_row_p), 0);
  d.scales.reserve(rows.size());

  for (size_t r = 0; r < rows.size(); ++r) {
    const SparseRow& row = rows[r];
    check_row_columns(row, int64_t(r), cols, who);
    int8_t* vals = d.values.data() + r * size_t(per_row_v);
    uint8_t* pos = d.positions.data() + r * size_t(per_row_p);
    auto put_position = [&](int64_t k, unsigned p) {
      const int64_t bit = k * bits;
      pos[bit >> 3] |= uint8_t(p << (bit & 7));
      if ((bit & 7) + bits > 8) pos[(bit >> 3) + 1] |= uint8_t(p >> (8 - (bit & 7)));
    };
    size_t k = 0;  // next kept column of the row
    for (int64_t g = 0; g < cols / m; ++g) {
      uint32_t used = 0;  // bit p: position p of this group holds a kept value
      int slot = 0;
      for (; k < row.cols.size() && int64_t(row.cols[k]) < (g + 1) * m; ++k, ++slot) {
        if (slot == n)
          throw Error(fmt::format("{}: row {} keeps more than {} values in columns [{}, {})", who, r, n, g * m,
                                  (g + 1) * m));
        check_int8(row.codes[k], int64_t(r), who);
        const unsigned p = unsigned(row.cols[k] - g * m);
        vals[g * n + slot] = int8_t(row.codes[k]);
        put_position(g * n + slot, p);
        used |= 1u << p;
      }
      // Zero fillers take the lowest unused positions, so no two values share one.
      for (unsigned p = 0; slot < n; ++p)
        if (!(used & (1u << p))) put_position(g * n + slot++, p);
    }
    d.scales.push_back(row.scale);
  }
  return d;
}

}  // namespace upg::format
