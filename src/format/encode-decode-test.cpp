// Round trips: kept weights -> encode -> validate -> decode equal the dense meaning
// computed independently in format-test-util.h, exactly.
#include <gtest/gtest.h>

#include <cmath>

#include "format-test-util.h"
#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::format {
namespace {

using testing::dense_of;
using testing::random_codebook;
using testing::random_nm_rows;
using testing::random_rows;

struct Shape {
  int64_t rows, cols;
};

std::vector<float> dense_matmul(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<float>& x,
                                int64_t tokens, const float* bias) {
  std::vector<float> y(size_t(tokens * rows));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double acc = bias ? bias[r] : 0.0;
      for (int64_t c = 0; c < cols; ++c) acc += double(w[size_t(r * cols + c)]) * x[size_t(t * cols + c)];
      y[size_t(t * rows + r)] = float(acc);
    }
  return y;
}

void check_matmul(const CompressedMatrix& m, const std::vector<float>& dense, std::mt19937& rng) {
  const int64_t tokens = 3;
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(size_t(tokens * m.cols)), bias(size_t(m.rows));
  for (float& v : x) v = g(rng);
  for (float& v : bias) v = g(rng);
  for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
    std::vector<float> y(size_t(tokens * m.rows), -1.0f);
    reference_matmul(m, x.data(), tokens, y.data(), b);
    const auto want = dense_matmul(dense, m.rows, m.cols, x, tokens, b);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 1e-4 * (1 + std::abs(want[i]))) << i;
  }
}

class MdCsrRoundTrip : public ::testing::TestWithParam<Encoding> {};

TEST_P(MdCsrRoundTrip, DecodesToTheDenseReference) {
  const Encoding enc = GetParam();
  std::mt19937 rng(42 + int(enc));
  for (Shape s : {Shape{12, 1000}, Shape{1, 700}, Shape{700, 1}, Shape{1, 1}, Shape{0, 5}, Shape{9, 37}}) {
    SCOPED_TRACE(::testing::Message() << s.rows << " x " << s.cols);
    const int k = 256;
    const std::vector<float> cb = enc == Encoding::Codebook ? random_codebook(rng, k) : std::vector<float>{};
    const auto rows = random_rows(rng, s.rows, s.cols, enc, k);
    const CompressedData d = encode_mdcsr(s.cols, rows, enc, cb);
    const CompressedMatrix m = d.view();
    ASSERT_NO_THROW(validate(m, "w"));
    EXPECT_EQ(m.rows, s.rows);
    EXPECT_EQ(m.cols, s.cols);
    const auto want = dense_of(rows, s.cols, enc, cb);
    EXPECT_EQ(decode_dense(m), want);
    check_matmul(m, want, rng);
  }
}

INSTANTIATE_TEST_SUITE_P(Encodings, MdCsrRoundTrip,
                         ::testing::Values(Encoding::Int8, Encoding::Prime, Encoding::Codebook),
                         [](const auto& info) { return std::string(encoding_name(info.param)); });

TEST(MdCsr, PaddingBridgesLongGaps) {
  // Columns 0, 255, 256, 600, 1021: gaps of 255 need no padding, 344 needs one, and a
  // row starting at 700 needs two (255 + 255 + 190).
  std::vector<SparseRow> rows(2);
  rows[0] = {{0, 255, 256, 600, 1021}, {1, 2, 3, 4, 5}, 1.0f};
  rows[1] = {{700}, {-7}, 0.5f};
  const CompressedData d = encode_mdcsr(1024, rows, Encoding::Int8);
  EXPECT_EQ(d.delta_indices, (std::vector<uint8_t>{0, 255, 1, 255, 89, 255, 166, 255, 255, 190}));
  EXPECT_EQ(d.values, (std::vector<int8_t>{1, 2, 3, 0, 4, 0, 5, 0, 0, -7}));
  EXPECT_EQ(d.row_pointers, (std::vector<uint32_t>{0, 7, 10}));
  EXPECT_EQ(d.view().entries(), 10);
  ASSERT_NO_THROW(validate(d.view(), "w"));
  EXPECT_EQ(decode_dense(d.view()), dense_of(rows, 1024, Encoding::Int8));
}

TEST(MdCsr, AllZeroMatrix) {
  std::vector<SparseRow> rows(4);
  const CompressedData d = encode_mdcsr(300, rows, Encoding::Prime);
  EXPECT_EQ(d.row_pointers, (std::vector<uint32_t>{0, 0, 0, 0, 0}));
  EXPECT_EQ(d.view().entries(), 0);
  ASSERT_NO_THROW(validate(d.view(), "w"));
  EXPECT_EQ(decode_dense(d.view()), std::vector<float>(1200, 0.0f));
}

TEST(MdCsr, RejectsBadInput) {
  auto enc = [](std::vector<SparseRow> rows, Encoding e = Encoding::Int8, std::vector<float> cb = {}) {
    return encode_mdcsr(10, rows, e, cb);
  };
  EXPECT_THROW(enc({{{3, 2}, {1, 1}, 1.0f}}), Error);         // descending
  EXPECT_THROW(enc({{{3, 3}, {1, 1}, 1.0f}}), Error);         // repeated
  EXPECT_THROW(enc({{{10}, {1}, 1.0f}}), Error);              // column == cols
  EXPECT_THROW(enc({{{1, 2}, {1}, 1.0f}}), Error);            // codes/cols size mismatch
  EXPECT_THROW(enc({{{1}, {128}, 1.0f}}), Error);             // int8 overflow
  EXPECT_THROW(enc({{{1}, {-128}, 1.0f}}), Error);
  EXPECT_THROW(enc({{{1}, {1}, NAN}}), Error);                // scale
  EXPECT_THROW(enc({{{1}, {10001}, 1.0f}}, Encoding::Prime), Error);
  EXPECT_THROW(enc({{{1}, {0x8000 | 10001}, 1.0f}}, Encoding::Prime), Error);
  EXPECT_THROW(enc({{{1}, {0x10000}, 1.0f}}, Encoding::Prime), Error);
  EXPECT_THROW(enc({{{1}, {-1}, 1.0f}}, Encoding::Prime), Error);
  EXPECT_NO_THROW(enc({{{1}, {0x8000 | 10000}, 1.0f}}, Encoding::Prime));
  EXPECT_THROW(enc({{{1}, {4}, 1.0f}}, Encoding::Codebook, {0, 1, 2, 3}), Error);  // index == K
  EXPECT_NO_THROW(enc({{{1}, {3}, 1.0f}}, Encoding::Codebook, {0, 1, 2, 3}));
  EXPECT_THROW(enc({{{1}, {1}, 1.0f}}, Encoding::Codebook, {0.5f, 1}), Error);    // codebook[0] != 0
  EXPECT_THROW(enc({{{1}, {0}, 1.0f}}, Encoding::Codebook, {}), Error);           // no codebook
  EXPECT_THROW(enc({{{1}, {0}, 1.0f}}, Encoding::Codebook, std::vector<float>(65537)), Error);
  EXPECT_THROW(enc({{{1}, {1}, 1.0f}}, Encoding::Int8, {0, 1}), Error);           // stray codebook
  EXPECT_THROW(encode_mdcsr(0, {}, Encoding::Int8), Error);
}

struct NMCase {
  int n, m;
  int64_t rows, cols;
};

class NMRoundTrip : public ::testing::TestWithParam<NMCase> {};

TEST_P(NMRoundTrip, DecodesToTheDenseReference) {
  const NMCase c = GetParam();
  std::mt19937 rng(7 + c.n * 17 + c.m);
  const auto rows = random_nm_rows(rng, c.rows, c.cols, c.n, c.m);
  const CompressedData d = encode_nm(c.cols, rows, c.n, c.m);
  const CompressedMatrix m = d.view();
  ASSERT_NO_THROW(validate(m, "w"));
  EXPECT_EQ(m.entries(), c.rows * c.cols / c.m * c.n);
  EXPECT_EQ(int64_t(d.positions.size()), c.rows * nm_position_bytes_per_row(c.cols, c.n, c.m));
  const auto want = dense_of(rows, c.cols, Encoding::Int8);
  EXPECT_EQ(decode_dense(m), want);
  check_matmul(m, want, rng);
}

// cols deliberately not multiples of 16 where M allows; 8:3 and 16:x make positions
// straddle bytes or leave unused high bits in a row's last byte.
INSTANTIATE_TEST_SUITE_P(Shapes, NMRoundTrip,
                         ::testing::Values(NMCase{2, 4, 9, 12}, NMCase{2, 4, 1, 4}, NMCase{2, 4, 33, 4},
                                           NMCase{4, 8, 7, 24}, NMCase{1, 2, 5, 6}, NMCase{1, 4, 3, 20},
                                           NMCase{3, 8, 6, 40}, NMCase{5, 8, 4, 16}, NMCase{3, 16, 4, 48},
                                           NMCase{8, 16, 3, 64}, NMCase{15, 16, 2, 32}, NMCase{2, 4, 0, 8},
                                           NMCase{2, 4, 16, 256}),
                         [](const auto& info) {
                           const NMCase& c = info.param;
                           return std::to_string(c.n) + "of" + std::to_string(c.m) + "_" + std::to_string(c.rows) +
                                  "x" + std::to_string(c.cols);
                         });

TEST(NM, WorkedExample) {
  // 2:4, one row of 8 columns: group 0 keeps columns 1 and 3, group 1 keeps only column
  // 6, so its second slot is a zero filler on the lowest free position, 0.
  std::vector<SparseRow> rows = {{{1, 3, 6}, {10, -20, 30}, 0.5f}};
  const CompressedData d = encode_nm(8, rows, 2, 4);
  EXPECT_EQ(d.values, (std::vector<int8_t>{10, -20, 30, 0}));
  // positions 1, 3, 2, 0 at 2 bits each, little-endian: 0b00'10'11'01 = 0x2d.
  EXPECT_EQ(d.positions, (std::vector<uint8_t>{0x2d}));
  EXPECT_EQ(decode_dense(d.view()), (std::vector<float>{0, 5, 0, -10, 0, 0, 15, 0}));
}

TEST(NM, EmptyRowsAndAllZero) {
  std::vector<SparseRow> rows(3);
  const CompressedData d = encode_nm(16, rows, 4, 8);
  ASSERT_NO_THROW(validate(d.view(), "w"));
  EXPECT_EQ(decode_dense(d.view()), std::vector<float>(48, 0.0f));
}

TEST(NM, RejectsBadInput) {
  EXPECT_THROW(encode_nm(8, {{{0, 1, 2}, {1, 1, 1}, 1.0f}}, 2, 4), Error);  // group overflow
  EXPECT_THROW(encode_nm(8, {{{4, 5, 7}, {1, 1, 1}, 1.0f}}, 2, 4), Error);
  EXPECT_THROW(encode_nm(10, {}, 2, 4), Error);                             // cols % M
  EXPECT_THROW(encode_nm(12, {}, 2, 3), Error);                             // M unsupported
  EXPECT_THROW(encode_nm(12, {}, 4, 4), Error);                             // N == M
  EXPECT_THROW(encode_nm(12, {}, 0, 4), Error);
  EXPECT_THROW(encode_nm(8, {{{1, 0}, {1, 1}, 1.0f}}, 2, 4), Error);        // not ascending
  EXPECT_THROW(encode_nm(8, {{{8}, {1}, 1.0f}}, 2, 4), Error);              // column == cols
  EXPECT_THROW(encode_nm(8, {{{1}, {-128}, 1.0f}}, 2, 4), Error);           // int8 range
}

TEST(SliceRows, MatchesTheRowsOfTheWhole) {
  std::mt19937 rng(3);
  const auto md_rows = random_rows(rng, 10, 600, Encoding::Int8, 0);
  const CompressedData md = encode_mdcsr(600, md_rows, Encoding::Int8);
  const auto nm_rows = random_nm_rows(rng, 10, 24, 4, 8);
  const CompressedData nm = encode_nm(24, nm_rows, 4, 8);
  for (const CompressedData* d : {&md, &nm}) {
    const CompressedMatrix whole = d->view();
    const auto all = decode_dense(whole);
    for (auto [r0, n] : {std::pair<int64_t, int64_t>{0, 10}, {3, 4}, {9, 1}, {5, 0}, {10, 0}}) {
      const CompressedMatrix s = slice_rows(whole, r0, n);
      EXPECT_EQ(s.rows, n);
      const auto part = decode_dense(s);
      EXPECT_EQ(part, std::vector<float>(all.begin() + r0 * whole.cols, all.begin() + (r0 + n) * whole.cols));
      std::vector<float> x(size_t(whole.cols), 1.0f), y(static_cast<size_t>(n)), y_all(static_cast<size_t>(whole.rows));
      reference_matmul(s, x.data(), 1, y.data());
      reference_matmul(whole, x.data(), 1, y_all.data());
      EXPECT_EQ(y, std::vector<float>(y_all.begin() + r0, y_all.begin() + r0 + n));
    }
    EXPECT_THROW(slice_rows(whole, 8, 3), Error);
    EXPECT_THROW(slice_rows(whole, -1, 1), Error);
  }
}

TEST(Names, ParseAndPrint) {
  for (Layout l : {Layout::MdCsr, Layout::NM, Layout::Dense}) EXPECT_EQ(parse_layout(layout_name(l), "w"), l);
  for (Encoding e : {Encoding::Int8, Encoding::Prime, Encoding::Codebook, Encoding::Int4, Encoding::Int3, Encoding::Int2})
    EXPECT_EQ(parse_encoding(encoding_name(e), "w"), e);
  EXPECT_THROW(parse_layout("csr", "w"), Error);
  EXPECT_THROW(parse_encoding("int1", "w"), Error);
  for (int bits : {2, 3, 4}) EXPECT_EQ(grouped_bits(grouped_encoding(bits)), bits);
  EXPECT_THROW(grouped_encoding(5), Error);
}

}  // namespace
}  // namespace upg::format
