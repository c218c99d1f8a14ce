// UPG grouped weights (docs/FORMAT.md 4.3) on every target this CPU runs: int4 dense with
// groups of 32, 64 and 128 (symmetric and with zero points) and N:M, int3 and int2 dense,
// through their execution form (int4_block_form) and the block kernels (4-bit nibbles,
// 3- and 2-bit planes), against a plain double-precision product
// of format::decode_dense's weights with the dequantized int8 activations the kernels
// see. What is left is summation order and, with zero points, the fp16 rounding of each
// group's min (-scale * zero, 2^-11 relative): 2e-3 of sum |w x|, as for the GGUF types.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/block-quant.h"
#include "kernels/cpu/for-each-target.h"
#include "kernels/cpu/int8-kernels.h"
#include "kernels/cpu/test-random-blocks.h"
#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/format.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/cpu.h"

namespace upg::kernels {
namespace {

// Random grouped rows of `bits` bits: every column (dense) or N of every M (int4); with
// `fewer`, an N:M group keeps 0 to N values, and the encoder's fillers (on the lowest
// free positions, so out of column order; code the group's zero) take the rest.
format::CompressedData random_int4(std::mt19937& rng, int64_t rows, int64_t cols, int group, bool zeros, int n = 0,
                                   int m = 0, int bits = 4, bool fewer = false) {
  const uint32_t levels = 1u << bits;
  std::vector<format::SparseRow> rs(static_cast<size_t>(rows));
  std::vector<format::Int4Groups> groups(rs.size());
  std::uniform_real_distribution<float> u(0.001f, 0.05f);
  for (size_t r = 0; r < rs.size(); ++r) {
    format::SparseRow& row = rs[r];
    for (int64_t g = 0; g < (m ? cols / m : 1); ++g) {
      if (!m) {
        for (int64_t c = 0; c < cols; ++c) row.cols.push_back(uint32_t(c));
        break;
      }
      std::vector<uint32_t> pos(static_cast<size_t>(m));
      for (int i = 0; i < m; ++i) pos[size_t(i)] = uint32_t(i);
      std::shuffle(pos.begin(), pos.end(), rng);
      const int keep = fewer ? int(rng() % uint32_t(n + 1)) : n;
      std::sort(pos.begin(), pos.begin() + keep);
      for (int i = 0; i < keep; ++i) row.cols.push_back(uint32_t(g * m) + pos[size_t(i)]);
    }
    for (size_t k = 0; k < row.cols.size(); ++k) row.codes.push_back(int32_t(rng() % levels));
    for (int64_t g = 0; g < format::int4_groups(cols, group); ++g) {
      groups[r].scales.push_back(fp32_to_fp16(u(rng)));
      if (zeros) groups[r].zeros.push_back(uint8_t(rng() % levels));
    }
  }
  return m ? format::encode_nm_int4(cols, rs, groups, n, m, group)
           : format::encode_dense_grouped(format::grouped_encoding(bits), cols, rs, groups, group);
}

void check(const format::CompressedData& d, int64_t n_tokens, std::mt19937& rng) {
  const format::CompressedMatrix c = d.view();
  const int64_t rows = c.rows, cols = c.cols;
  SCOPED_TRACE(::testing::Message() << format::layout_name(c.layout) << " " << format::encoding_name(c.encoding) << " " << rows << "x" << cols << " g"
                                    << c.int4.group_size << (c.int4.group_zeros.empty() ? "" : " zeros") << " tokens "
                                    << n_tokens);
  const std::vector<float> w = format::decode_dense(c);
  const std::vector<float> x = random_x(rng, n_tokens * cols);
  QuantizedActs a;
  const std::vector<float> xq = quantized_x(x, n_tokens, cols, a);

  const BlockQuantRows m = int4_block_form(c);
  std::vector<float> sums;
  block_sums(a, m.sub, m.subs, sums);
  const bool nm24 = c.layout == format::Layout::NM && c.nm.n == 2 && c.nm.m == 4;
  testing::for_each_target([&](const std::string&) {
    // The expanded form on every target; 2:4 also in place where the target can.
    for (const bool in_place : {false, true}) {
    if (in_place && !(nm24 && int8_kernels().nm24_int4)) continue;
    SCOPED_TRACE(in_place ? "2:4 in place" : "int4_block_form");
    std::vector<float> y(size_t(n_tokens * rows) + 1, 777.0f);
    const int64_t mid = rows / 3;  // two calls: a kernel writing outside its rows shows
    // The target's packed positions where it packs them (AVX2), else the file's.
    const auto pack = int8_kernels().nm24_int4_pack;
    const std::vector<uint8_t> positions = in_place && pack ? pack(c) : std::vector<uint8_t>{};
    for (auto [r0, r1] : {std::pair{int64_t(0), mid}, {mid, rows}}) {
      if (in_place) int8_kernels().nm24_int4(c, pack ? positions.data() : nullptr, a, r0, r1, y.data(), rows);
      else int8_kernels().block_quant(m, a, sums.data(), r0, r1, y.data(), rows);
    }
    ASSERT_EQ(y.back(), 777.0f) << "wrote past the output";
    // The expanded form's fp16 min (-scale * zero) meets every column, pruned ones too;
    // in place, the zero is taken off each code exactly.
    expect_product(y, w, xq, n_tokens, rows, cols, [&](int64_t r, int64_t col) {
      if (in_place || c.int4.group_zeros.empty()) return 0.0;
      const size_t g = size_t(r * format::int4_groups(cols, c.int4.group_size) + col / c.int4.group_size);
      return double(fp16_to_fp32(c.int4.group_scales[g])) * c.int4.group_zeros[g];
    });
    }
  });
}

TEST(Int4Kernels, DenseOnEveryTarget) {
  std::mt19937 rng(5);
  for (int group : {32, 64, 128})
    for (bool zeros : {false, true}) {
      // 200 columns: not whole 64-column vectors, and a partial last group; 576: the
      // default model's hidden size (4.5 groups of 128). 17 and 35 tokens: the prefill GEMM.
      for (int64_t cols : {32, 200, 576})
        for (int64_t n_tokens : {1, 3, 9, 17}) check(random_int4(rng, 7, cols, group, zeros), n_tokens, rng);
      check(random_int4(rng, 13, 1536, group, zeros), 35, rng);
    }
}

TEST(Int4Kernels, NmOnEveryTarget) {
  std::mt19937 rng(6);
  for (auto [n, m] : {std::pair{2, 4}, {4, 8}, {1, 4}})
    for (int group : {32, 128})
      for (bool zeros : {false, true})
        for (int64_t n_tokens : {1, 5, 17}) check(random_int4(rng, 9, 576, group, zeros, n, m), n_tokens, rng);
  // 2:4 in place: whole and partial 128-column blocks (and a partial last group), decode
  // tiles of 1-4 tokens and the prefill GEMM (16 and more, 35 leaving a group mostly
  // padding).
  for (int group : {32, 64, 128})
    for (bool zeros : {false, true})
      for (int64_t cols : {64, 128, 200, 1536})
        for (int64_t n_tokens : {1, 2, 3, 4, 7, 16, 35}) check(random_int4(rng, 7, cols, group, zeros, 2, 4), n_tokens, rng);
  // Groups keeping fewer than 2 (fillers out of column order), 13 rows (the two calls
  // split at row 4), the default model's widths, 1 to 17 tokens.
  for (int group : {32, 64, 128})
    for (bool zeros : {false, true})
      for (int64_t cols : {576, 1540})
        for (int64_t n_tokens : {1, 5, 17})
          check(random_int4(rng, 13, cols, group, zeros, 2, 4, 4, true), n_tokens, rng);
}

TEST(Int4Kernels, DenseFormIsAboutTheFileSize) {
  std::mt19937 rng(4);
  for (int group : {32, 64, 128})
    for (bool zeros : {false, true}) {
      const format::CompressedData d = random_int4(rng, 64, 576, group, zeros);
      const BlockQuantRows m = int4_block_form(d.view());
      // The codes are the file's bytes; a zero point (1 byte) becomes an fp16 min.
      // 19 bytes a group of 32 become 20; 35 of 64 become 36 (and a partial group of 128 in
      // 576 columns costs as a whole one).
      const double limit = !zeros ? 1.0 : group == 32 ? 1.06 : 1.03;
      EXPECT_LE(double(m.bytes()), limit * double(d.view().bytes())) << group << " " << zeros;
    }
}

TEST(LowBitKernels, DenseOnEveryTarget) {
  std::mt19937 rng(15);
  for (int bits : {3, 2})
    for (int group : {32, 64, 128})
      for (bool zeros : {false, true}) {
        // 1 and 200 columns: a lone value and a partial last vector and group.
        for (int64_t cols : {1, 32, 200, 576})
          for (int64_t n_tokens : {1, 3, 9, 17})
            check(random_int4(rng, 7, cols, group, zeros, 0, 0, bits), n_tokens, rng);
        check(random_int4(rng, 13, 1536, group, zeros, 0, 0, bits), 35, rng);
      }
}

TEST(LowBitKernels, FormIsTheFileSize) {
  std::mt19937 rng(16);
  for (int bits : {3, 2})
    for (int group : {32, 128}) {
      const format::CompressedData d = random_int4(rng, 64, 576, group, false, 0, 0, bits);
      const BlockQuantRows m = int4_block_form(d.view());
      EXPECT_EQ(m.bits, bits);
      EXPECT_EQ(m.bytes(), d.view().bytes()) << bits << " " << group;
    }
}

// Widened to nibbles (the CUDA backend's form of int3 and int2): every code, scale and
// min the same, and the scalar kernel's products equal bit for bit (the same integer sums
// in the same order).
TEST(LowBitKernels, NibbleFormKeepsEveryCode) {
  std::mt19937 rng(17);
  for (int bits : {3, 2})
    for (int group : {32, 64, 128})
      for (bool zeros : {false, true}) {
        SCOPED_TRACE(::testing::Message() << bits << " bits, g" << group << (zeros ? " zeros" : ""));
        const format::CompressedData d = random_int4(rng, 5, 200, group, zeros, 0, 0, bits);
        const BlockQuantRows planes = int4_block_form(d.view()), nibbles = nibble_form(planes);
        ASSERT_EQ(nibbles.bits, 4);
        EXPECT_EQ(nibbles.d, planes.d);
        EXPECT_EQ(nibbles.m, planes.m);
        EXPECT_EQ(nibbles.offset, planes.offset);
        EXPECT_EQ(nibbles.sub, planes.sub);
        for (int64_t r = 0; r < planes.rows; ++r)
          for (int64_t c = 0; c < planes.padded_cols; ++c)
            ASSERT_EQ(block_quant_code(nibbles, nibbles.row_codes(r), c), block_quant_code(planes, planes.row_codes(r), c))
                << "row " << r << " column " << c;
        QuantizedActs a;
        (void)quantized_x(random_x(rng, 3 * 200), 3, 200, a);
        std::vector<float> sums, y0(size_t(3 * planes.rows)), y1(y0.size());
        block_sums(a, planes.sub, planes.subs, sums);
        block_quant_scalar(planes, a, sums.data(), 0, planes.rows, y0.data(), planes.rows);
        block_quant_scalar(nibbles, a, sums.data(), 0, planes.rows, y1.data(), planes.rows);
        EXPECT_EQ(y0, y1);
      }
  std::mt19937 rng4(18);
  EXPECT_THROW(nibble_form(int4_block_form(random_int4(rng4, 2, 64, 32, false).view())), Error);
}

// Through the backend: packed on first use and by prepare() alike, and within the
// activations' int8 rounding of the reference kernels (fp32 activations).
TEST(Int4Kernels, BackendMatmul) {
  std::mt19937 rng(12);
  for (int kind : {0, 1, 3, 2}) {  // int4 dense, 2:4 int4, int3, int2
    const bool nm = kind == 1;
    const format::CompressedData d = nm ? random_int4(rng, 11, 320, 64, true, 2, 4)
                                        : random_int4(rng, 11, 320, 64, true, 0, 0, kind <= 1 ? 4 : kind);
    const format::CompressedMatrix c = d.view();
    LinearWeight w;
    w.compressed = &c;
    w.rows = c.rows;
    w.cols = c.cols;
    w.name = "w";
    const int64_t n_tokens = 3;
    const std::vector<float> x = random_x(rng, n_tokens * c.cols);
    EXPECT_TRUE(make_cpu_backend(2)->supports(c.layout, c.encoding));
    const auto [packed, ref] = packed_and_reference(w, x, n_tokens);
    const std::vector<float> dense = format::decode_dense(c);
    for (int64_t tk = 0; tk < n_tokens; ++tk)
      for (int64_t r = 0; r < c.rows; ++r) {
        double bound = 0;
        for (int64_t col = 0; col < c.cols; ++col)
          bound += std::fabs(double(dense[size_t(r * c.cols + col)]) * x[size_t(tk * c.cols + col)]);
        EXPECT_NEAR(packed[size_t(tk * c.rows + r)], ref[size_t(tk * c.rows + r)], 0.01 * bound);
      }
  }
}

}  // namespace
}  // namespace upg::kernels
