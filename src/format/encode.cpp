// Building the stored layouts from kept weights (the compressor's last step). Inputs are
// checked here so a compressor bug fails loudly instead of writing a file the loader
// would reject later.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "upg/core/error.h"
#include "upg/core/tensor.h"
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

// Grouped values: the geometry, then per row its group scales and zeros (codes are put
// by the caller). d.encoding is set.
void start_int4(CompressedData& d, int64_t values_per_row, int group_size, const char* who) {
  if (!int4_group_size_ok(group_size))
    throw Error(fmt::format("{}: group size {} (expected 32, 64 or 128)", who, group_size));
  if (d.layout == Layout::NM && group_size % d.m != 0)
    throw Error(fmt::format("{}: group size {} is not a multiple of M = {}", who, group_size, d.m));
  d.group_size = group_size;
  const int64_t groups = int4_groups(d.cols, group_size);
  d.q4.assign(size_t(d.rows * grouped_row_bytes(grouped_bits(d.encoding), values_per_row)), 0);
  d.group_scales.reserve(size_t(d.rows * groups));
}

void push_int4_groups(CompressedData& d, const std::vector<Int4Groups>& all, size_t r, const char* who) {
  const size_t groups = size_t(int4_groups(d.cols, d.group_size));
  const int max_code = (1 << grouped_bits(d.encoding)) - 1;
  if (all.size() != size_t(d.rows)) throw Error(fmt::format("{}: {} group lists for {} rows", who, all.size(), d.rows));
  const Int4Groups& row = all[r];
  const bool zero_points = !all[0].zeros.empty();
  if (row.scales.size() != groups || row.zeros.size() != (zero_points ? groups : 0))
    throw Error(fmt::format("{}: row {} has {} group scales and {} zeros for {} groups", who, r, row.scales.size(),
                            row.zeros.size(), groups));
  for (size_t g = 0; g < groups; ++g) {
    if (!std::isfinite(fp16_to_fp32(row.scales[g])))
      throw Error(fmt::format("{}: row {} group {} scale is not finite", who, r, g));
    if (zero_points && row.zeros[g] > max_code)
      throw Error(fmt::format("{}: row {} group {} zero {} outside 0..{}", who, r, g, row.zeros[g], max_code));
  }
  d.group_scales.insert(d.group_scales.end(), row.scales.begin(), row.scales.end());
  d.group_zeros.insert(d.group_zeros.end(), row.zeros.begin(), row.zeros.end());
}

void check_grouped(int32_t code, int bits, int64_t r, const char* who) {
  if (code < 0 || code >= (1 << bits))
    throw Error(fmt::format("{}: row {} int{} code {} outside 0..{}", who, r, bits, code, (1 << bits) - 1));
}

}  // namespace

CompressedData encode_dense_grouped(Encoding enc, int64_t cols, const std::vector<SparseRow>& rows,
                                    const std::vector<Int4Groups>& groups, int group_size) {
  constexpr const char* who = "encode_dense_grouped";
  const int bits = grouped_bits(enc);
  if (bits == 0) throw Error(fmt::format("{}: encoding {} is not grouped", who, encoding_name(enc)));
  if (cols < 1) throw Error(fmt::format("{}: cols = {} must be positive", who, cols));
  CompressedData d;
  d.layout = Layout::Dense;
  d.encoding = enc;
  d.rows = int64_t(rows.size());
  d.cols = cols;
  start_int4(d, cols, group_size, who);
  const int64_t row_bytes = grouped_row_bytes(bits, cols);
  for (size_t r = 0; r < rows.size(); ++r) {
    const SparseRow& row = rows[r];
    if (int64_t(row.codes.size()) != cols)
      throw Error(fmt::format("{}: row {} has {} codes for {} columns", who, r, row.codes.size(), cols));
    uint8_t* out = d.q4.data() + r * size_t(row_bytes);
    for (int64_t c = 0; c < cols; ++c) {
      check_grouped(row.codes[size_t(c)], bits, int64_t(r), who);
      set_grouped_code(out, c, bits, row.codes[size_t(c)]);
    }
    push_int4_groups(d, groups, r, who);
  }
  return d;
}

CompressedData encode_dense_int4(int64_t cols, const std::vector<SparseRow>& rows,
                                 const std::vector<Int4Groups>& groups, int group_size) {
  return encode_dense_grouped(Encoding::Int4, cols, rows, groups, group_size);
}

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

namespace {

// int8 (groups null) or int4 values.
CompressedData encode_nm_any(int64_t cols, const std::vector<SparseRow>& rows, int n, int m,
                             const std::vector<Int4Groups>* groups, int group_size) {
  const char* who = groups ? "encode_nm_int4" : "encode_nm";
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
  const bool int4 = groups != nullptr;
  const bool zero_points = int4 && !groups->empty() && !(*groups)[0].zeros.empty();
  if (int4) {
    d.encoding = Encoding::Int4;
    start_int4(d, per_row_v, group_size, who);
  }
  else d.values.assign(size_t(d.rows * per_row_v), 0);
  d.positions.assign(size_t(d.rows * per_row_p), 0);
  if (!int4) d.scales.reserve(rows.size());
  const int zero = int4 ? kInt4DefaultZero : 0;  // a filler's code: weight 0 (or its group's zero, below)

  for (size_t r = 0; r < rows.size(); ++r) {
    const SparseRow& row = rows[r];
    check_row_columns(row, int64_t(r), cols, who);
    int8_t* vals = int4 ? nullptr : d.values.data() + r * size_t(per_row_v);
    uint8_t* q4 = int4 ? d.q4.data() + r * size_t(int4_row_bytes(per_row_v)) : nullptr;
    if (int4) push_int4_groups(d, *groups, r, who);  // checks the zeros the fillers take
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
        const unsigned p = unsigned(row.cols[k] - g * m);
        if (int4) {
          check_grouped(row.codes[k], 4, int64_t(r), who);
          set_int4_code(q4, g * n + slot, row.codes[k]);
        } else {
          check_int8(row.codes[k], int64_t(r), who);
          vals[g * n + slot] = int8_t(row.codes[k]);
        }
        put_position(g * n + slot, p);
        used |= 1u << p;
      }
      // Zero fillers take the lowest unused positions, so no two values share one.
      // An int4 filler holds its group's zero point, so it too decodes to 0.
      const int filler = zero_points ? (*groups)[r].zeros[size_t(g * m / group_size)] : zero;
      for (unsigned p = 0; slot < n; ++p)
        if (!(used & (1u << p))) {
          if (int4) set_int4_code(q4, g * n + slot, filler);
          put_position(g * n + slot++, p);
        }
    }
    if (!int4) d.scales.push_back(row.scale);
  }
  return d;
}

}  // namespace

CompressedData encode_nm(int64_t cols, const std::vector<SparseRow>& rows, int n, int m) {
  return encode_nm_any(cols, rows, n, m, nullptr, 0);
}

CompressedData encode_nm_int4(int64_t cols, const std::vector<SparseRow>& rows, const std::vector<Int4Groups>& groups,
                              int n, int m, int group_size) {
  return encode_nm_any(cols, rows, n, m, &groups, group_size);
}

}  // namespace upg::format
