#pragma once
// Random kept-weight matrices for the format tests, and their dense meaning computed
// independently of the decoders (own prime list, own column arithmetic).
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <string>

#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::format::testing {

// Trial-division primes, independent of the compile-time table.
inline uint32_t slow_nth_prime(int i) {
  static std::vector<uint32_t> primes;
  for (uint32_t n = primes.empty() ? 2 : primes.back() + 1; int(primes.size()) < i; ++n) {
    bool p = true;
    for (uint32_t d = 2; d * d <= n; ++d)
      if (n % d == 0) {
        p = false;
        break;
      }
    if (p) primes.push_back(n);
  }
  return primes[size_t(i - 1)];
}

// A code for `enc` drawn at random (k is the codebook size for Codebook).
inline int32_t random_code(std::mt19937& rng, Encoding enc, int k) {
  switch (enc) {
    case Encoding::Int8: return std::uniform_int_distribution<int>(-127, 127)(rng);
    case Encoding::Prime: {
      const int idx = std::uniform_int_distribution<int>(0, 10000)(rng);
      return idx | (rng() % 2 ? 0x8000 : 0);
    }
    case Encoding::Codebook: return std::uniform_int_distribution<int>(0, k - 1)(rng);
    case Encoding::Int4:
    case Encoding::Int3:
    case Encoding::Int2: return std::uniform_int_distribution<int>(0, (1 << grouped_bits(enc)) - 1)(rng);
  }
  return 0;
}

// Rows with a mix of densities so gaps over 255 (padding), empty rows and full rows all
// appear. Column 0, 255, 256 and 510 are forced into some rows to hit the gap edges.
inline std::vector<SparseRow> random_rows(std::mt19937& rng, int64_t rows, int64_t cols, Encoding enc, int k) {
  std::vector<SparseRow> out(static_cast<size_t>(rows));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    SparseRow& row = out[size_t(r)];
    row.scale = 0.001f + u(rng) * 0.1f;
    const float density = r % 5 == 0 ? 0.0f : r % 5 == 1 ? 0.002f : r % 5 == 2 ? 1.0f : u(rng) * 0.6f;
    for (int64_t c = 0; c < cols; ++c) {
      const bool forced = r % 7 == 3 && (c == 0 || c == 255 || c == 256 || c == 510 || c == cols - 1);
      if (forced || u(rng) < density) {
        row.cols.push_back(uint32_t(c));
        row.codes.push_back(random_code(rng, enc, k));
      }
    }
  }
  return out;
}

inline float code_value(int32_t code, Encoding enc, const std::vector<float>& codebook) {
  switch (enc) {
    case Encoding::Int8: return float(code);
    case Encoding::Prime: {
      const int idx = code & 0x7fff;
      if (idx == 0) return 0.0f;
      const float p = float(slow_nth_prime(idx));
      return (code & 0x8000) ? -p : p;
    }
    case Encoding::Codebook: return codebook[size_t(code)];
    case Encoding::Int4:
    case Encoding::Int3:
    case Encoding::Int2: break;  // group scales: int4-test.cpp
  }
  return 0;
}

inline std::vector<float> dense_of(const std::vector<SparseRow>& rows, int64_t cols, Encoding enc,
                                   const std::vector<float>& codebook = {}) {
  std::vector<float> d(rows.size() * size_t(cols), 0.0f);
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t k = 0; k < rows[r].cols.size(); ++k)
      d[r * size_t(cols) + rows[r].cols[k]] = rows[r].scale * code_value(rows[r].codes[k], enc, codebook);
  return d;
}

inline std::vector<float> random_codebook(std::mt19937& rng, int k) {
  std::vector<float> cb(static_cast<size_t>(k));
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int i = 1; i < k; ++i) cb[size_t(i)] = g(rng);
  return cb;  // cb[0] == 0
}

// N:M rows: each group of M keeps a random count in 0..N of random positions (with
// `full_groups`, every group keeps N).
inline std::vector<SparseRow> random_nm_rows(std::mt19937& rng, int64_t rows, int64_t cols, int n, int m,
                                             bool full_groups = false) {
  std::vector<SparseRow> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    SparseRow& row = out[size_t(r)];
    row.scale = 0.01f * float(r + 1);
    for (int64_t g = 0; g < cols / m; ++g) {
      std::vector<int> pos(static_cast<size_t>(m));
      for (int i = 0; i < m; ++i) pos[size_t(i)] = i;
      std::shuffle(pos.begin(), pos.end(), rng);
      // Most groups are full; some keep fewer so the zero fillers are exercised.
      const int keep = !full_groups && rng() % 3 == 0 ? int(rng() % unsigned(n + 1)) : n;
      std::sort(pos.begin(), pos.begin() + keep);
      for (int i = 0; i < keep; ++i) {
        row.cols.push_back(uint32_t(g * m + pos[size_t(i)]));
        row.codes.push_back(std::uniform_int_distribution<int>(-127, 127)(rng));
      }
    }
  }
  return out;
}

// validate() must reject m with one line that starts with the tensor's name and contains
// every fragment.
inline void expect_rejected(const CompressedMatrix& m, const std::string& name,
                            std::initializer_list<const char*> fragments) {
  try {
    validate(m, name);
    FAIL() << "validate accepted a corrupted matrix";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(name + ": ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing \"" << f << "\" in: " << msg;
  }
}

}  // namespace upg::format::testing
