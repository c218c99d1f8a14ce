// The reference decoders and matmul: plain loops that follow docs/FORMAT.md word for
// word. Every fast kernel is tested against these, so clarity beats speed here. Inputs
// are expected to have passed validate(); the per-entry checks below still keep a bad
// matrix from reading out of bounds.
#include <fmt/format.h>

#include <algorithm>

#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/format.h"
#include "upg/format/primes.h"

namespace upg::format {
namespace {

// Calls f(column, weight) for every stored entry of row r, padding and filler included
// (their weight is zero).
template <typename F>
void for_each_entry(const CompressedMatrix& m, int64_t r, F&& f) {
  if (is_grouped(m.encoding)) {
    for_each_stored(m, r, [&](int64_t c, int64_t k) { f(c, int4_value(m, r, k, c)); });
    return;
  }
  const float scale = r >= 0 && r < m.rows ? m.scales[size_t(r)] : 0.0f;
  if (m.layout == Layout::MdCsr)
    for_each_stored(m, r, [&](int64_t c, int64_t k) { f(c, scale * mdcsr_value(m, size_t(k))); });
  else
    for_each_stored(m, r, [&](int64_t c, int64_t k) {
      f(c, scale * float(m.nm.values[size_t(r * m.values_per_row() + k)]));
    });
}

}  // namespace

void throw_bad_entry(const CompressedMatrix& m, int64_t r, int64_t col) {
  if (col < 0) throw Error(fmt::format("decode: row {} outside a matrix of {} rows", r, m.rows));
  throw Error(fmt::format("decode: row {} reaches column {}, past cols {}", r, col, m.cols));
}

float int4_value(const CompressedMatrix& m, int64_t r, int64_t k, int64_t c) {
  const Int4View& v = m.int4;
  const int64_t groups = int4_groups(m.cols, v.group_size), g = r * groups + c / v.group_size;
  const int bits = grouped_bits(m.encoding);
  const int code = grouped_code(v.codes.data() + r * grouped_row_bytes(bits, m.values_per_row()), k, bits);
  const int zero = v.group_zeros.empty() ? grouped_default_zero(bits) : v.group_zeros[size_t(g)];
  return fp16_to_fp32(v.group_scales[size_t(g)]) * float(code - zero);
}

float mdcsr_value(const CompressedMatrix& m, size_t k) {
  switch (m.encoding) {
    case Encoding::Int8: return float(m.mdcsr.values[k]);
    case Encoding::Prime: {
      const uint16_t code = m.mdcsr.prime_indices[k];
      const int index = code & kPrimeIndexMask;
      if (index == 0) return 0.0f;
      const float p = float(nth_prime(index));
      return (code & kPrimeSignBit) ? -p : p;
    }
    case Encoding::Int4:
    case Encoding::Int3:
    case Encoding::Int2: break;
    case Encoding::Codebook: {
      const uint16_t index = m.mdcsr.prime_indices[k];
      if (index >= m.mdcsr.codebook.size())
        throw Error(fmt::format("decode: codebook index {} past the codebook's {} entries", index, m.mdcsr.codebook.size()));
      return m.mdcsr.codebook[index];
    }
  }
  throw Error("decode: unknown encoding");
}

void decode_row(const CompressedMatrix& m, int64_t r, float* dense) {
  std::fill(dense, dense + m.cols, 0.0f);
  for_each_entry(m, r, [&](int64_t c, float w) { dense[c] += w; });
}

std::vector<float> decode_dense(const CompressedMatrix& m) {
  std::vector<float> out(size_t(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) decode_row(m, r, out.data() + r * m.cols);
  return out;
}

void reference_matmul(const CompressedMatrix& m, const float* x, int64_t n_tokens, float* y, const float* bias) {
  std::vector<int64_t> cols;
  std::vector<float> weights;
  for (int64_t r = 0; r < m.rows; ++r) {
    cols.clear();
    weights.clear();
    for_each_entry(m, r, [&](int64_t c, float w) {
      cols.push_back(c);
      weights.push_back(w);
    });
    // Double accumulation makes this the more accurate side of any kernel comparison.
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * m.cols;
      double acc = bias ? double(bias[r]) : 0.0;
      for (size_t k = 0; k < cols.size(); ++k) acc += double(weights[k]) * double(xt[cols[k]]);
      y[t * m.rows + r] = float(acc);
    }
  }
}

}  // namespace upg::format
