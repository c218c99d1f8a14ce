// Every int8 kernel on every target this CPU runs, against format::reference_matmul.
// The int8 kernels see quantized activations, so the reference is fed the same values
// dequantized (x' = scale * (q - 128)): what is left is float summation order, and the
// tolerance can be tight. A separate test bounds the quantization error itself.
#include <gtest/gtest.h>

#include "upg/core/error.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "format/format-test-util.h"
#include "kernels/cpu/for-each-target.h"
#include "kernels/cpu/int8-kernels.h"
#include "kernels/cpu/kernels.h"

namespace upg::kernels {
namespace {

using format::Encoding;
using format::SparseRow;

std::vector<float> random_x(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = g(rng);
  if (n > 3) x[size_t(n / 3)] = 40.0f;  // an outlier, as real activations have
  return x;
}

std::vector<float> dequantized(const QuantizedActs& a) {
  std::vector<float> x(size_t(a.n_tokens * a.cols));
  for (int64_t t = 0; t < a.n_tokens; ++t)
    for (int64_t c = 0; c < a.cols; ++c)
      x[size_t(t * a.cols + c)] = a.block_scales(t)[c / kActBlock] * (float(a.row(t)[c]) - 128.0f);
  return x;
}

// |y - ref| <= rel * sum |w| |x| per output, with the bound computed from the dense weights.
void expect_close(const std::vector<float>& y, const std::vector<float>& ref, const std::vector<float>& dense,
                  const std::vector<float>& x, int64_t rows, int64_t cols, int64_t n_tokens, double rel) {
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double bound = 0;
      for (int64_t c = 0; c < cols; ++c)
        bound += std::fabs(double(dense[size_t(r * cols + c)]) * x[size_t(t * cols + c)]);
      const size_t i = size_t(t * rows + r);
      ASSERT_NEAR(y[i], ref[i], rel * bound + 1e-30) << "token " << t << " row " << r;
    }
}

// Runs `kernel(r0, r1, y)` over two row ranges (so a kernel writing outside its range
// shows), and checks against `ref` [n_tokens, rows].
template <class Kernel>
void check_rows_against(Kernel&& kernel, const std::vector<float>& ref, const std::vector<float>& dense,
                        const std::vector<float>& xref, int64_t rows, int64_t cols, int64_t n_tokens, double rel) {
  std::vector<float> y(size_t(n_tokens * rows) + 1, 777.0f);
  const int64_t mid = rows / 3;
  kernel(0, mid, y.data());
  kernel(mid, rows, y.data());
  ASSERT_EQ(y.back(), 777.0f) << "wrote past the output";
  expect_close(y, ref, dense, xref, rows, cols, n_tokens, rel);
}

template <class Kernel>
void check_rows(Kernel&& kernel, const format::CompressedMatrix& ref_m, const std::vector<float>& dense,
                const std::vector<float>& xref, int64_t n_tokens, double rel) {
  std::vector<float> ref(size_t(n_tokens * ref_m.rows));
  format::reference_matmul(ref_m, xref.data(), n_tokens, ref.data());
  check_rows_against(kernel, ref, dense, xref, ref_m.rows, ref_m.cols, n_tokens, rel);
}

// An int8 compressed matrix decoded to DenseRows4, as AVX2 runs MdCSR and N:M other
// than 2:4; nothing on targets without that kernel.
void check_dense_rows4(const format::CompressedMatrix& m, const std::vector<float>& dense, const QuantizedActs& a,
                       int64_t n_tokens) {
  if (!int8_kernels().dense_rows4) return;
  const DenseRows4 d = pack_dense_rows4(m);
  check_rows([&](int64_t r0, int64_t r1, float* y) { int8_kernels().dense_rows4(d, a, r0, r1, y, m.rows); }, m,
             dense, dequantized(a), n_tokens, 1e-5);
}

// Random activations for m, quantized, and the reference product of m with the same
// rounded values: what a 16-row group kernel is checked against.
struct RoundedCase {
  QuantizedActs a;
  std::vector<float> xq;    // [n_tokens, cols], dequantized
  std::vector<float> want;  // [n_tokens, rows]
};
RoundedCase rounded_case(std::mt19937& rng, const format::CompressedMatrix& m, int64_t n_tokens) {
  RoundedCase c;
  const std::vector<float> x = random_x(rng, n_tokens * m.cols);
  quantize_acts(x.data(), n_tokens, m.cols, c.a);
  c.xq = dequantized(c.a);
  c.want.resize(size_t(n_tokens * m.rows));
  format::reference_matmul(m, c.xq.data(), n_tokens, c.want.data());
  return c;
}

// Runs kernel(g0, g1, y) over row groups [0, groups) in two calls, as threads split
// them, and returns y [n_tokens, rows]; fails when the kernel wrote past it.
template <class Kernel>
std::vector<float> run_groups(Kernel&& kernel, int64_t groups, int64_t rows, int64_t n_tokens) {
  std::vector<float> y(size_t(n_tokens * rows) + 1, 777.0f);
  kernel(0, groups / 2, y.data());
  kernel(groups / 2, groups, y.data());
  EXPECT_EQ(y.back(), 777.0f) << "wrote past the output";
  y.pop_back();
  return y;
}

struct Shape {
  int64_t rows, cols;
};
// 1 x N, N x 1, widths that are not multiples of 64 or 128, wide rows with gaps over 255.
const Shape kShapes[] = {{1, 64}, {1, 8}, {8, 1}, {5, 200}, {33, 576}, {17, 1000}, {3, 1536}};
const int64_t kTokens[] = {1, 3, 6, 64};

TEST(Int8Kernels, QuantizeActsBoundsTheError) {
  std::mt19937 rng(1);
  const int64_t cols = 300;
  const std::vector<float> x = random_x(rng, 2 * cols);
  QuantizedActs a;
  quantize_acts(x.data(), 2, cols, a);
  EXPECT_EQ(a.stride, 384);
  const std::vector<float> xq = dequantized(a);
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_LE(std::fabs(xq[size_t(t * cols + c)] - x[size_t(t * cols + c)]),
                0.5f * a.block_scales(t)[c / kActBlock] * 1.0001f);
  for (int64_t c = cols; c < a.stride; ++c) EXPECT_EQ(a.row(1)[c], 128) << c;
  EXPECT_EQ(a.block_scales(0)[11], 0.0f);  // padding block
}

TEST(Int8Kernels, DenseMatchesReferenceOnEveryTarget) {
  std::mt19937 rng(2);
  testing::for_each_target([&](const std::string&) {
    for (const Shape& s : kShapes)
      for (int64_t nt : kTokens) {
        SCOPED_TRACE(::testing::Message() << int8_target() << " " << s.rows << "x" << s.cols << " tokens " << nt);
        std::vector<int8_t> w(size_t(s.rows * s.cols));
        for (auto& v : w) v = int8_t(int(rng() % 256) - 128);  // -128 included: the AVX2 sign trick must hold
        std::vector<float> scales(size_t(s.rows)), dense(size_t(s.rows * s.cols));
        for (int64_t r = 0; r < s.rows; ++r) {
          scales[size_t(r)] = 0.01f * float(r + 1);
          for (int64_t c = 0; c < s.cols; ++c) dense[size_t(r * s.cols + c)] = scales[size_t(r)] * w[size_t(r * s.cols + c)];
        }
        const std::vector<float> x = random_x(rng, nt * s.cols);
        QuantizedActs a;
        quantize_acts(x.data(), nt, s.cols, a);
        const std::vector<float> xq = dequantized(a);
        std::vector<float> ref(size_t(nt * s.rows));
        for (int64_t t = 0; t < nt; ++t)
          for (int64_t r = 0; r < s.rows; ++r) {
            double acc = 0;
            for (int64_t c = 0; c < s.cols; ++c) acc += double(dense[size_t(r * s.cols + c)]) * xq[size_t(t * s.cols + c)];
            ref[size_t(t * s.rows + r)] = float(acc);
          }
        const DenseI8 m{w.data(), scales.data(), s.rows, s.cols};
        check_rows_against([&](int64_t r0, int64_t r1, float* y) { int8_kernels().dense(m, a, r0, r1, y, s.rows); },
                           ref, dense, xq, s.rows, s.cols, nt, 1e-5);
        // Rows interleaved by 4, on the targets that repack dense int8 (AVX2); the two
        // row ranges start and end inside groups of 4.
        if (int8_kernels().dense_rows4) {
          const DenseRows4 p = pack_dense_rows4(m);
          check_rows_against(
              [&](int64_t r0, int64_t r1, float* y) { int8_kernels().dense_rows4(p, a, r0, r1, y, s.rows); }, ref,
              dense, xq, s.rows, s.cols, nt, 1e-5);
        }
      }
  });
}

TEST(Int8Kernels, BitmapMatchesReferenceOnEveryTarget) {
  std::mt19937 rng(3);
  testing::for_each_target([&](const std::string&) {
    for (const Shape& s : kShapes)
      for (int64_t nt : kTokens) {
        SCOPED_TRACE(::testing::Message() << int8_target() << " " << s.rows << "x" << s.cols << " tokens " << nt);
        // Empty rows, nearly empty rows (gaps over 255), full rows, random densities.
        const auto rows = format::testing::random_rows(rng, s.rows, s.cols, Encoding::Int8, 0);
        const format::CompressedData ref = format::encode_mdcsr(s.cols, rows, Encoding::Int8);
        const BitmapMatrix b = pack_bitmap(ref.view());
        const std::vector<float> x = random_x(rng, nt * s.cols);
        QuantizedActs a;
        quantize_acts(x.data(), nt, s.cols, a);
        check_rows([&](int64_t r0, int64_t r1, float* y) { int8_kernels().bitmap(b, a, r0, r1, y, s.rows); },
                   ref.view(), format::testing::dense_of(rows, s.cols, Encoding::Int8), dequantized(a), nt, 1e-5);
        check_dense_rows4(ref.view(), format::testing::dense_of(rows, s.cols, Encoding::Int8), a, nt);
      }
  });
}

TEST(Int8Kernels, BitmapF16MatchesReferenceForPrimeAndCodebook) {
  std::mt19937 rng(4);
  const std::vector<float> codebook = format::testing::random_codebook(rng, 256);
  testing::for_each_target([&](const std::string&) {
    for (Encoding enc : {Encoding::Prime, Encoding::Codebook})
      for (const Shape& s : kShapes)
        for (int64_t nt : {int64_t{1}, int64_t{5}}) {
          SCOPED_TRACE(::testing::Message() << int8_target() << " " << format::encoding_name(enc) << " " << s.rows
                                            << "x" << s.cols << " tokens " << nt);
          const auto rows = format::testing::random_rows(rng, s.rows, s.cols, enc, 256);
          const format::CompressedData ref =
              format::encode_mdcsr(s.cols, rows, enc, enc == Encoding::Codebook ? codebook : std::vector<float>{});
          const BitmapMatrix b = pack_bitmap(ref.view());
          ASSERT_TRUE(b.f16);
          const std::vector<float> x = random_x(rng, nt * s.cols);
          // fp16 values carry a relative rounding of 2^-11 (the row's small values, as
          // subnormals, a bit more): the bound is on sum |w x|.
          check_rows([&](int64_t r0, int64_t r1, float* y) { int8_kernels().bitmap_f16(b, x.data(), nt, r0, r1, y, s.rows); },
                     ref.view(), format::testing::dense_of(rows, s.cols, enc, codebook), x, nt, 1e-3);
        }
  });
}

TEST(Int8Kernels, NMMatchesReferenceOnEveryTarget) {
  std::mt19937 rng(5);
  testing::for_each_target([&](const std::string&) {
    for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}, std::pair{1, 4}, std::pair{2, 8}})
      for (const Shape& s : {Shape{1, 64}, Shape{8, 8}, Shape{9, 200}, Shape{33, 576}, Shape{4, 1536}, Shape{3, 1000}})
        for (int64_t nt : kTokens) {
          if (s.cols % m) continue;
          SCOPED_TRACE(::testing::Message() << int8_target() << " " << n << ":" << m << " " << s.rows << "x" << s.cols
                                            << " tokens " << nt);
          // Groups with fewer than N kept values leave zero fillers (and put values out of
          // column order); even rows keep N in every group, the common case.
          auto rows = format::testing::random_nm_rows(rng, s.rows, s.cols, n, m);
          const auto full = format::testing::random_nm_rows(rng, s.rows, s.cols, n, m, true);
          for (size_t r = 0; r < rows.size(); r += 2) rows[r] = full[r];
          const format::CompressedData ref = format::encode_nm(s.cols, rows, n, m);
          const std::vector<float> x = random_x(rng, nt * s.cols);
          QuantizedActs a;
          quantize_acts(x.data(), nt, s.cols, a);
          check_rows([&](int64_t r0, int64_t r1, float* y) { int8_kernels().nm(ref.view(), a, r0, r1, y, s.rows); },
                     ref.view(), format::testing::dense_of(rows, s.cols, Encoding::Int8), dequantized(a), nt, 1e-5);
          check_dense_rows4(ref.view(), format::testing::dense_of(rows, s.cols, Encoding::Int8), a, nt);
          // The 2:4 gather form, on the targets that run 2:4 through it (AVX2).
          if (int8_kernels().nm24 && n == 2 && m == 4) {
            const Nm24Rows p = pack_nm24(ref.view());
            check_rows([&](int64_t r0, int64_t r1, float* y) { int8_kernels().nm24(p, a, r0, r1, y, s.rows); },
                       ref.view(), format::testing::dense_of(rows, s.cols, Encoding::Int8), dequantized(a), nt, 1e-5);
          }
        }
  });
}

// Nm24Rows's register order puts each of a window's 32 values in its own byte, and the
// kernel's shuffle controls (int8-avx2.cpp) assume exactly this order: value k of group
// k / 2 sits in lane (k / 2) % 8 / 4, in a dword whose parity is the 32-column block.
// (That the kernel decodes every pair code right, fillers and values out of column order
// included, the comparisons with the reference kernels above show.)
TEST(Int8Kernels, Nm24RegisterOrderIsAPermutation) {
  std::vector<int> seen(32, 0);
  for (int k = 0; k < 32; ++k) {
    const int b = nm24_register_byte(k);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, 32);
    ++seen[size_t(b)];
    const int col = 2 * k;  // the group's first column
    EXPECT_EQ(b / 16, col % 32 / 16) << k;  // lane: which 16 columns of its 32
    EXPECT_EQ(b % 16 / 4 % 2, col / 32) << k;  // dword parity: which 32-column block
  }
  for (int b = 0; b < 32; ++b) EXPECT_EQ(seen[size_t(b)], 1) << b;
  // The two values of a group share one 16-bit half of a dword (their pair code is
  // decoded once per half), the lower column first.
  for (int k = 0; k < 32; k += 2) EXPECT_EQ(nm24_register_byte(k + 1), nm24_register_byte(k) + 1) << k;
  // The 6 pairs of 4 columns have the 6 codes 0..5, which the kernel's table maps back.
  std::vector<int> codes;
  for (int p0 = 0; p0 < 4; ++p0)
    for (int p1 = p0 + 1; p1 < 4; ++p1) codes.push_back(nm24_pair_code(p0, p1));
  EXPECT_EQ(codes, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  const format::CompressedData nm48 = format::encode_nm(8, {format::SparseRow{}}, 4, 8);
  EXPECT_THROW(pack_nm24(nm48.view()), Error);
  // A group that names one position twice has no pair code: the packer says which.
  format::CompressedData twice = format::encode_nm(4, {format::SparseRow{}}, 2, 4);
  twice.positions[0] = 0;  // both values of row 0's group 0 at position 0
  try {
    pack_nm24(twice.view());
    ADD_FAILURE() << "pack_nm24 accepted a position used twice";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pack_nm24: row 0 group 0: position 0 used twice"), std::string::npos)
        << e.what();
  }
}

// The 16-row bitmap tiles (BitmapRows16) of MdCSR, int8 and wide (prime, codebook), and of
// N:M: row counts
// that leave a partial group, widths that end inside a 4-column quad or a 32-column block,
// empty and full rows, gaps over 255; decode tiles and the prefill GEMM; row groups in two
// calls, as threads split them.
TEST(Int8Kernels, BitmapRows16MatchesReferenceOnEveryTargetWithIt) {
  std::mt19937 rng(10);
  const std::vector<float> codebook = format::testing::random_codebook(rng, 256);
  int ran = 0;
  testing::for_each_target([&](const std::string&) {
    if (!int8_kernels().bitmap_rows16) return;
    ++ran;
    // MdCSR in each encoding, then 2:4 and 4:8 (m = 4, 8): N:M groups with fewer than N
    // kept values (zero fillers) in odd rows.
    for (int m : {0, 4, 8})
    for (Encoding enc : {Encoding::Int8, Encoding::Prime, Encoding::Codebook})
      for (const Shape& s : {Shape{1, 8}, Shape{16, 32}, Shape{9, 104}, Shape{33, 576}, Shape{17, 1000},
                             Shape{40, 40}, Shape{5, 700}, Shape{3, 37}, Shape{7, 1}})
        for (int64_t nt : {1, 3, 6, 9, 17}) {
          if (m > 0 && (enc != Encoding::Int8 || s.cols % m)) continue;
          SCOPED_TRACE(::testing::Message() << int8_target() << " " << format::encoding_name(enc) << " m " << m << " "
                                            << s.rows << "x" << s.cols << " tokens " << nt);
          auto rows = m ? format::testing::random_nm_rows(rng, s.rows, s.cols, m / 2, m)
                        : format::testing::random_rows(rng, s.rows, s.cols, enc, enc == Encoding::Int8 ? 0 : 256);
          if (m) {
            const auto full = format::testing::random_nm_rows(rng, s.rows, s.cols, m / 2, m, true);
            for (size_t r = 0; r < rows.size(); r += 2) rows[r] = full[r];
          }
          const format::CompressedData ref =
              m ? format::encode_nm(s.cols, rows, m / 2, m)
                : format::encode_mdcsr(s.cols, rows, enc, enc == Encoding::Codebook ? codebook : std::vector<float>{});
          const BitmapRows16 p = pack_bitmap_rows16(ref.view());
          ASSERT_EQ(p.groups, (s.rows + 15) / 16);
          ASSERT_EQ(p.wide, enc != Encoding::Int8);
          const RoundedCase c = rounded_case(rng, ref.view(), nt);
          const std::vector<float>& xq = c.xq;
          const std::vector<float>& want = c.want;
          const std::vector<float> y = run_groups(
              [&](int64_t g0, int64_t g1, float* out) { int8_kernels().bitmap_rows16(p, c.a, g0, g1, out, s.rows); },
              p.groups, s.rows, nt);
          const std::vector<float> dense = format::testing::dense_of(rows, s.cols, enc, codebook);
          if (!p.wide) {
            expect_close(y, want, dense, xq, s.rows, s.cols, nt, 1e-5);
            continue;
          }
          // Wide values are int16 of the row's largest magnitude: each kept weight is off
          // by at most half a step, max |w| / 65534, on top of float summation order.
          for (int64_t t = 0; t < nt; ++t)
            for (int64_t r = 0; r < s.rows; ++r) {
              double wx = 0, amax = 0, xsum = 0;
              for (int64_t c = 0; c < s.cols; ++c) {
                const double w = dense[size_t(r * s.cols + c)], xv = std::fabs(xq[size_t(t * s.cols + c)]);
                wx += std::fabs(w) * xv;
                amax = std::max(amax, std::fabs(w));
                if (w != 0) xsum += xv;
              }
              const size_t i = size_t(t * s.rows + r);
              ASSERT_NEAR(y[i], want[i], 1e-5 * wx + amax / 65534 * xsum * 1.01 + 1e-30) << "token " << t << " row " << r;
            }
        }
  });
  if (int8_target() == "avx512-vnni") {
    EXPECT_GT(ran, 0);
  }
}

// 2:4 in Nm24Rows16, on the targets that run it (AVX-512): row counts that leave a
// partial group, widths that end inside a 32-column block or an 8-column octet, groups
// with fewer than 2 kept values (zero fillers, values out of column order) in odd rows,
// an all-zero matrix; decode tiles of 1-8 tokens and the prefill GEMM (17 tokens); row
// groups in two calls, as threads split them.
TEST(Int8Kernels, Nm24Rows16MatchesReferenceOnEveryTargetWithIt) {
  std::mt19937 rng(12);
  int ran = 0;
  testing::for_each_target([&](const std::string&) {
    if (!int8_kernels().nm24_rows16) return;
    ++ran;
    for (const Shape& s : {Shape{1, 4}, Shape{1, 64}, Shape{16, 32}, Shape{9, 104}, Shape{33, 576}, Shape{17, 1000},
                           Shape{40, 40}, Shape{5, 700}, Shape{8, 1536}})
      for (int64_t nt : {1, 2, 3, 4, 5, 8, 9, 17})
        for (bool zero : {false, true}) {
          if (zero && nt > 3) continue;
          SCOPED_TRACE(::testing::Message() << int8_target() << " " << s.rows << "x" << s.cols << " tokens " << nt
                                            << (zero ? " all zero" : ""));
          auto rows = format::testing::random_nm_rows(rng, s.rows, s.cols, 2, 4);
          const auto full = format::testing::random_nm_rows(rng, s.rows, s.cols, 2, 4, true);
          for (size_t r = 0; r < rows.size(); r += 2) rows[r] = full[r];
          if (zero)
            for (auto& r : rows) r = SparseRow{{}, {}, 1.0f};
          const format::CompressedData ref = format::encode_nm(s.cols, rows, 2, 4);
          const Nm24Rows16 p = pack_nm24_rows16(ref.view());
          ASSERT_EQ(p.groups, (s.rows + 15) / 16);
          ASSERT_EQ(p.blocks, (s.cols + 31) / 32);
          const RoundedCase c = rounded_case(rng, ref.view(), nt);
          const std::vector<float> y = run_groups(
              [&](int64_t g0, int64_t g1, float* out) { int8_kernels().nm24_rows16(p, c.a, g0, g1, out, s.rows); },
              p.groups, s.rows, nt);
          if (zero) {
            for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], 0.0f) << i;
          }
          expect_close(y, c.want, format::testing::dense_of(rows, s.cols, Encoding::Int8), c.xq, s.rows, s.cols, nt,
                       1e-5);
        }
  });
  if (int8_target() == "avx512-vnni") {
    EXPECT_GT(ran, 0);
  }
  // Only 2:4 int8 has the form, and a group naming one position twice has no pair code.
  EXPECT_THROW(pack_nm24_rows16(format::encode_nm(8, {SparseRow{}}, 4, 8).view()), Error);
  format::CompressedData twice = format::encode_nm(4, {SparseRow{}}, 2, 4);
  twice.positions[0] = 0;
  try {
    pack_nm24_rows16(twice.view());
    ADD_FAILURE() << "pack_nm24_rows16 accepted a position used twice";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pack_nm24_rows16: row 0 group 0: position 0 used twice"), std::string::npos)
        << e.what();
  }
}

TEST(Int8Kernels, AllZeroMatrixGivesZero) {
  testing::for_each_target([&](const std::string&) {
    std::vector<SparseRow> rows(4);
    for (auto& r : rows) r.scale = 1.0f;
    const format::CompressedData ref = format::encode_mdcsr(130, rows, Encoding::Int8);
    const BitmapMatrix b = pack_bitmap(ref.view());
    std::vector<float> x(130, 1.0f), y(4, 5.0f);
    QuantizedActs a;
    quantize_acts(x.data(), 1, 130, a);
    int8_kernels().bitmap(b, a, 0, 4, y.data(), 4);
    for (float v : y) EXPECT_EQ(v, 0.0f);
    if (int8_kernels().bitmap_rows16) {
      std::fill(y.begin(), y.end(), 5.0f);
      int8_kernels().bitmap_rows16(pack_bitmap_rows16(ref.view()), a, 0, 1, y.data(), 4);
      for (float v : y) EXPECT_EQ(v, 0.0f);
    }
  });
}

TEST(Int8Kernels, EveryTargetIsReachable) {
  // The dispatch must reach the AVX-512 kernels on a CPU that has them, else the
  // benchmarks silently measure a fallback.
  force_target("");
  const std::string best = int8_target();
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi2")) {
    EXPECT_EQ(best, "avx512-vnni");
  }
  EXPECT_TRUE(force_target("SCALAR") || force_target("EMU128"));
  EXPECT_EQ(int8_target(), "scalar");
  force_target("");
  EXPECT_EQ(int8_target(), best);
}

}  // namespace
}  // namespace upg::kernels
