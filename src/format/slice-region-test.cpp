// copy_region (tensor parallelism's shards): for every layout and encoding, a region
// decodes to the same rectangle of the whole matrix's decoding, its zero rows decode to
// zeros, and a column range off the layout's groups is refused naming the tensor.
#include <gtest/gtest.h>

#include <random>

#include "format/format-test-util.h"
#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/format.h"

namespace upg::format {
namespace {

struct Case {
  const char* name;
  Layout layout;
  Encoding encoding;
  int n, m, group;
  bool zeros;
};

CompressedData make(const Case& c, std::mt19937& rng, int64_t rows, int64_t cols) {
  if (c.layout == Layout::MdCsr) {
    std::vector<float> cb = c.encoding == Encoding::Codebook ? testing::random_codebook(rng, 40) : std::vector<float>{};
    return encode_mdcsr(cols, testing::random_rows(rng, rows, cols, c.encoding, 40), c.encoding, cb);
  }
  std::vector<SparseRow> rs = c.m ? testing::random_nm_rows(rng, rows, cols, c.n, c.m) : std::vector<SparseRow>(size_t(rows));
  if (c.encoding == Encoding::Int8) return encode_nm(cols, rs, c.n, c.m);
  std::vector<Int4Groups> groups(static_cast<size_t>(rows));
  std::uniform_real_distribution<float> u(0.001f, 0.1f);
  for (int64_t r = 0; r < rows; ++r) {
    SparseRow& row = rs[size_t(r)];
    if (!c.m) {
      row.cols.resize(size_t(cols));
      for (int64_t k = 0; k < cols; ++k) row.cols[size_t(k)] = uint32_t(k);
    }
    row.codes.resize(row.cols.size());
    const uint32_t levels = 1u << grouped_bits(c.encoding);
    for (int32_t& code : row.codes) code = int32_t(rng() % levels);
    for (int64_t g = 0; g < int4_groups(cols, c.group); ++g) {
      groups[size_t(r)].scales.push_back(fp32_to_fp16(u(rng)));
      if (c.zeros) groups[size_t(r)].zeros.push_back(uint8_t(rng() % levels));
    }
  }
  return c.m ? encode_nm_int4(cols, rs, groups, c.n, c.m, c.group)
             : encode_dense_grouped(c.encoding, cols, rs, groups, c.group);
}

class CopyRegion : public ::testing::TestWithParam<Case> {};

TEST_P(CopyRegion, DecodesToTheSameRectangle) {
  const Case& c = GetParam();
  std::mt19937 rng(7);
  const int64_t rows = 23, cols = 1024;
  const CompressedData d = make(c, rng, rows, cols);
  const CompressedMatrix whole = d.view();
  validate(whole, c.name);
  const std::vector<float> dense = decode_dense(whole);
  const int64_t a = column_alignment(whole);
  // Ranges at the start, in the middle and to the end, as shards take them.
  const int64_t ranges[][4] = {{0, rows, 0, cols}, {3, 11, 0, 2 * a}, {5, 9, 3 * a, 5 * a}, {0, rows, 4 * a, cols - 4 * a}};
  for (const auto& [r0, n, c0, nc] : ranges) {
    for (int64_t zero_rows : {0, 1}) {
      const CompressedData s = copy_region(whole, r0, n, c0, nc, zero_rows, c.name);
      const CompressedMatrix v = s.view();
      validate(v, c.name);
      ASSERT_EQ(v.rows, n + zero_rows);
      ASSERT_EQ(v.cols, nc);
      const std::vector<float> got = decode_dense(v);
      for (int64_t r = 0; r < n + zero_rows; ++r)
        for (int64_t k = 0; k < nc; ++k) {
          const float want = r < n ? dense[size_t((r0 + r) * cols + c0 + k)] : 0.0f;
          ASSERT_EQ(got[size_t(r * nc + k)], want) << "row " << r << " col " << k << " of [" << r0 << ", " << c0 << "]";
        }
    }
  }
}

TEST_P(CopyRegion, RefusesColumnsOffItsGroups) {
  const Case& c = GetParam();
  std::mt19937 rng(3);
  const CompressedData d = make(c, rng, 4, 512);
  const CompressedMatrix whole = d.view();
  const int64_t a = column_alignment(whole);
  if (a == 1) GTEST_SKIP() << "MdCSR splits at any column";
  try {
    copy_region(whole, 0, 4, a / 2, a, 0, "model.layers.0.mlp.down_proj.weight");
    FAIL() << "a range off the groups was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("down_proj"), std::string::npos) << e.what();
  }
  EXPECT_THROW(copy_region(whole, 0, 5, 0, a, 0, "w"), Error);  // rows past the matrix
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, CopyRegion,
    ::testing::Values(Case{"mdcsr_int8", Layout::MdCsr, Encoding::Int8, 0, 0, 0, false},
                      Case{"mdcsr_prime", Layout::MdCsr, Encoding::Prime, 0, 0, 0, false},
                      Case{"mdcsr_codebook", Layout::MdCsr, Encoding::Codebook, 0, 0, 0, false},
                      Case{"nm24_int8", Layout::NM, Encoding::Int8, 2, 4, 0, false},
                      Case{"nm38_int8", Layout::NM, Encoding::Int8, 3, 8, 0, false},
                      Case{"nm24_int4_zeros", Layout::NM, Encoding::Int4, 2, 4, 64, true},
                      Case{"dense_int4", Layout::Dense, Encoding::Int4, 0, 0, 32, false},
                      Case{"dense_int4_zeros", Layout::Dense, Encoding::Int4, 0, 0, 128, true},
                      Case{"dense_int3_zeros", Layout::Dense, Encoding::Int3, 0, 0, 64, true},
                      Case{"dense_int2", Layout::Dense, Encoding::Int2, 0, 0, 32, false}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace upg::format
