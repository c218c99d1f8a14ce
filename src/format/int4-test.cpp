// Grouped values (docs/FORMAT.md 4.3): int4's nibble order and int3 / int2's bit planes,
// encode/decode against the spec's formula computed here on its own, slices, and one
// rejection per validation rule.
#include <gtest/gtest.h>

#include <random>

#include "format/format-test-util.h"
#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/format.h"

namespace upg::format {
namespace {

const std::string kName = "model.layers.0.mlp.down_proj.weight";

// Rows with random codes and groups with fp16 scales and (optionally) zeros; for N:M the
// kept columns of random_nm_rows with their codes replaced by int4 codes.
struct Rows {
  std::vector<SparseRow> rows;
  std::vector<Int4Groups> groups;
};

Rows int4_rows(std::mt19937& rng, int64_t rows, int64_t cols, int group, bool zeros, int n = 0, int m = 0,
               int bits = 4) {
  const uint32_t levels = 1u << bits;
  Rows out;
  out.rows = m ? testing::random_nm_rows(rng, rows, cols, n, m) : std::vector<SparseRow>(size_t(rows));
  out.groups.resize(size_t(rows));
  const int64_t groups = int4_groups(cols, group);
  std::uniform_real_distribution<float> u(0.001f, 0.1f);
  for (int64_t r = 0; r < rows; ++r) {
    SparseRow& row = out.rows[size_t(r)];
    if (!m) {
      row.cols.resize(size_t(cols));
      for (int64_t c = 0; c < cols; ++c) row.cols[size_t(c)] = uint32_t(c);
    }
    row.codes.resize(row.cols.size());
    for (int32_t& c : row.codes) c = int32_t(rng() % levels);
    for (int64_t g = 0; g < groups; ++g) {
      out.groups[size_t(r)].scales.push_back(fp32_to_fp16(u(rng)));
      if (zeros) out.groups[size_t(r)].zeros.push_back(uint8_t(rng() % levels));
    }
  }
  return out;
}

CompressedData encode(const Rows& r, int64_t cols, int group, int n = 0, int m = 0) {
  return m ? encode_nm_int4(cols, r.rows, r.groups, n, m, group) : encode_dense_int4(cols, r.rows, r.groups, group);
}

// The spec's meaning of the rows, from their own fields.
std::vector<float> dense_of(const Rows& rs, int64_t cols, int group, int bits = 4) {
  std::vector<float> d(rs.rows.size() * size_t(cols), 0.0f);
  for (size_t r = 0; r < rs.rows.size(); ++r)
    for (size_t k = 0; k < rs.rows[r].cols.size(); ++k) {
      const uint32_t c = rs.rows[r].cols[k];
      const size_t g = c / uint32_t(group);
      const int zero = rs.groups[r].zeros.empty() ? 1 << (bits - 1) : rs.groups[r].zeros[g];
      d[r * size_t(cols) + c] = fp16_to_fp32(rs.groups[r].scales[g]) * float(rs.rows[r].codes[k] - zero);
    }
  return d;
}

TEST(Int4, NibbleOrderIsTheSpecs) {
  // The worked example of docs/FORMAT.md 4.3.
  Rows rows;
  rows.rows.resize(1);
  rows.rows[0].cols = {0, 1, 2, 3};
  rows.rows[0].codes = {10, 0, 8, 15};
  rows.groups = {{{fp32_to_fp16(0.5f)}, {}}};
  const CompressedData d = encode(rows, 4, 32);
  ASSERT_EQ(d.q4.size(), 32u);
  EXPECT_EQ(d.q4[0], 0x0a);
  EXPECT_EQ(d.q4[1], 0x00);
  EXPECT_EQ(d.q4[2], 0x08);
  EXPECT_EQ(d.q4[3], 0x0f);
  EXPECT_EQ(d.group_scales[0], 0x3800);
  EXPECT_EQ(decode_dense(d.view()), (std::vector<float>{1.0f, -4.0f, 0.0f, 3.5f}));
  // Value 64v + 32 + i is the high nibble of byte 32v + i.
  std::vector<uint8_t> row(64, 0);
  set_int4_code(row.data(), 100, 9);
  EXPECT_EQ(row[32 + 100 % 32], 0x90);
  EXPECT_EQ(int4_code(row.data(), 100), 9);
}

TEST(Grouped, DenseRoundTripsEveryWidthAndGroupSize) {
  std::mt19937 rng(7);
  for (int bits : {4, 3, 2})
    for (int group : {32, 64, 128})
      for (bool zeros : {false, true})
        for (int64_t cols : {1, 31, 64, 96, 200, 576}) {
          SCOPED_TRACE(::testing::Message() << "int" << bits << " g" << group << " zeros " << zeros << " " << cols);
          const auto rows = int4_rows(rng, 5, cols, group, zeros, 0, 0, bits);
          const CompressedData d = encode_dense_grouped(grouped_encoding(bits), cols, rows.rows, rows.groups, group);
          const CompressedMatrix v = d.view();
          ASSERT_NO_THROW(validate(v, kName));
          EXPECT_EQ(v.entries(), 5 * cols);
          EXPECT_EQ(int64_t(d.q4.size()), 5 * ((cols + 63) / 64) * 8 * bits);
          const std::vector<float> want = dense_of(rows, cols, group, bits);
          EXPECT_EQ(decode_dense(v), want);
          const CompressedMatrix s = slice_rows(v, 2, 2);
          std::vector<float> row(static_cast<size_t>(cols));
          decode_row(s, 1, row.data());
          EXPECT_EQ(row, std::vector<float>(want.begin() + 3 * cols, want.begin() + 4 * cols));
        }
}

TEST(Int4, NmRoundTrips) {
  std::mt19937 rng(8);
  for (auto [n, m] : {std::pair{2, 4}, {1, 4}, {4, 8}, {3, 16}})
    for (int group : {32, 128})
      for (bool zeros : {false, true}) {
        const int64_t cols = 256 + 3 * 32;
        auto rows = int4_rows(rng, 4, cols, group, zeros, n, m);
        const CompressedData d = encode(rows, cols, group, n, m);
        ASSERT_NO_THROW(validate(d.view(), kName));
        // Fillers hold their group's zero point: they decode to 0 like pruned weights.
        EXPECT_EQ(decode_dense(d.view()), dense_of(rows, cols, group)) << n << ":" << m << " g" << group;
      }
}

TEST(Int4, EncodeRejectsBadInput) {
  std::mt19937 rng(9);
  auto rows = int4_rows(rng, 2, 64, 32, false);
  EXPECT_THROW(encode(rows, 64, 48), Error);
  rows.rows[1].codes[3] = 16;
  EXPECT_THROW(encode(rows, 64, 32), Error);
  rows = int4_rows(rng, 2, 64, 32, false);
  rows.groups[0].scales.pop_back();
  EXPECT_THROW(encode(rows, 64, 32), Error);
  rows = int4_rows(rng, 2, 64, 32, true);
  rows.groups[1].zeros[0] = 16;
  EXPECT_THROW(encode(rows, 64, 32), Error);
  rows.groups[1].zeros.clear();  // zero points for some rows only
  EXPECT_THROW(encode(rows, 64, 32), Error);
  EXPECT_THROW(encode(int4_rows(rng, 2, 64, 32, false, 2, 4), 64, 33, 2, 4), Error);
}

void expect_rejected(const CompressedMatrix& m, std::initializer_list<const char*> fragments) {
  testing::expect_rejected(m, kName, fragments);
}

CompressedData dense(bool zeros) {
  std::mt19937 rng(10);
  return encode(int4_rows(rng, 3, 100, 32, zeros), 100, 32);
}

CompressedData nm24(bool zeros) {
  std::mt19937 rng(11);
  return encode(int4_rows(rng, 2, 64, 32, zeros, 2, 4), 64, 32, 2, 4);
}

TEST(Int4Validate, RejectsEachMalformedPart) {
  {
    auto d = dense(false);
    d.group_size = 48;
    expect_rejected(d.view(), {"group_size = 48"});
  }
  {
    auto d = dense(false);
    d.q4.pop_back();
    expect_rejected(d.view(), {"q4 has"});
  }
  {
    auto d = dense(false);
    d.group_scales.push_back(0);
    expect_rejected(d.view(), {"group_scales has"});
  }
  {
    auto d = dense(true);
    d.group_zeros.pop_back();
    expect_rejected(d.view(), {"group_zeros has"});
  }
  {
    auto d = dense(false);
    d.group_scales[4] = 0x7c00;  // fp16 inf
    expect_rejected(d.view(), {"group_scales[4]", "not finite"});
  }
  {
    auto d = dense(true);
    d.group_zeros[2] = 16;
    expect_rejected(d.view(), {"group_zeros[2] = 16"});
  }
  {
    auto d = dense(false);  // 100 values: codes 100..127 of each row are padding
    set_int4_code(d.q4.data() + 64, 101, 3);
    expect_rejected(d.view(), {"q4 row 1", "padding code 101"});
  }
  {
    auto d = dense(false);
    d.scales.assign(3, 1.0f);
    expect_rejected(d.view(), {"unexpected part scales"});
  }
  {
    auto d = dense(false);
    d.values.assign(10, 1);
    d.layout = Layout::NM;  // values belong to neither: nm int4 keeps its values in q4
    d.n = 2, d.m = 4;
    expect_rejected(d.view(), {"nm_positions"});
  }
  {
    auto d = dense(false);
    d.encoding = Encoding::Int8;
    expect_rejected(d.view(), {"layout dense does not take encoding int8"});
  }
  {
    auto d = nm24(false);
    d.layout = Layout::MdCsr;
    expect_rejected(d.view(), {"layout mdcsr does not take encoding int4"});
  }
  {
    auto d = nm24(true);
    d.positions[0] = 0x05;  // positions 1, 1 in group 0
    expect_rejected(d.view(), {"used twice"});
  }
  {
    auto d = nm24(false);
    d.q4.resize(d.q4.size() * 2);
    expect_rejected(d.view(), {"q4 has"});
  }
  {
    auto d = nm24(false);
    d.values.assign(32, 0);
    expect_rejected(d.view(), {"unexpected part nm_values"});
  }
}

// ---- int3 and int2: bit planes ----

TEST(LowBit, PlaneOrderIsTheSpecs) {
  // The worked example of docs/FORMAT.md 4.3: int3, one row of 3 columns.
  Rows rows;
  rows.rows.resize(1);
  rows.rows[0].cols = {0, 1, 2};
  rows.rows[0].codes = {5, 0, 7};
  rows.groups = {{{fp32_to_fp16(0.5f)}, {}}};
  const CompressedData d = encode_dense_grouped(Encoding::Int3, 3, rows.rows, rows.groups, 32);
  ASSERT_EQ(d.q4.size(), 24u);  // three 8-byte planes for the row's one block of 64
  EXPECT_EQ(d.q4[0], 0x05);   // plane 0: bit 0 of values 0, 1, 2 = 1, 0, 1
  EXPECT_EQ(d.q4[8], 0x04);   // plane 1: 0, 0, 1
  EXPECT_EQ(d.q4[16], 0x05);  // plane 2: 1, 0, 1
  EXPECT_EQ(decode_dense(d.view()), (std::vector<float>{0.5f, -2.0f, 1.5f}));  // zero 4
  // Value 64v + i is bit i % 8 of byte i / 8 of each plane of block v.
  std::vector<uint8_t> row(32, 0);
  set_plane_code(row.data(), 64 + 13, 2, 2);
  EXPECT_EQ(row[16 + 1], 0x00);
  EXPECT_EQ(row[16 + 8 + 1], 0x20);
  EXPECT_EQ(plane_code(row.data(), 64 + 13, 2), 2);
  EXPECT_EQ(grouped_row_bytes(3, 65), 48);
  EXPECT_EQ(grouped_row_bytes(2, 64), 16);
  EXPECT_EQ(grouped_row_bytes(4, 65), int4_row_bytes(65));
}

TEST(LowBit, EncodeRejectsBadInput) {
  std::mt19937 rng(13);
  auto rows = int4_rows(rng, 2, 64, 32, true, 0, 0, 3);
  EXPECT_NO_THROW(encode_dense_grouped(Encoding::Int3, 64, rows.rows, rows.groups, 32));
  EXPECT_THROW(encode_dense_grouped(Encoding::Int2, 64, rows.rows, rows.groups, 32), Error);  // codes past 3
  EXPECT_THROW(encode_dense_grouped(Encoding::Int8, 64, rows.rows, rows.groups, 32), Error);
  rows.rows[1].codes[3] = 8;
  EXPECT_THROW(encode_dense_grouped(Encoding::Int3, 64, rows.rows, rows.groups, 32), Error);
  rows = int4_rows(rng, 2, 64, 32, true, 0, 0, 2);
  rows.groups[0].zeros[1] = 4;
  EXPECT_THROW(encode_dense_grouped(Encoding::Int2, 64, rows.rows, rows.groups, 32), Error);
}

TEST(LowBitValidate, RejectsEachMalformedPart) {
  auto low = [](int bits, bool zeros) {
    std::mt19937 rng(14);
    const auto rows = int4_rows(rng, 3, 100, 32, zeros, 0, 0, bits);
    return encode_dense_grouped(grouped_encoding(bits), 100, rows.rows, rows.groups, 32);
  };
  {
    auto d = low(3, false);
    d.q4.pop_back();
    expect_rejected(d.view(), {"q3 has"});
  }
  {
    auto d = low(2, true);
    d.group_zeros[2] = 4;
    expect_rejected(d.view(), {"group_zeros[2] = 4", "0..3"});
  }
  {
    auto d = low(3, true);
    d.group_zeros[5] = 8;
    expect_rejected(d.view(), {"group_zeros[5] = 8", "0..7"});
  }
  {
    auto d = low(3, false);  // 100 values: codes 100..127 of each row are padding
    set_plane_code(d.q4.data() + 48, 101, 3, 4);
    expect_rejected(d.view(), {"q3 row 1", "padding code 101"});
  }
  {
    auto d = low(2, false);
    set_plane_code(d.q4.data() + 2 * 32, 127, 2, 1);
    expect_rejected(d.view(), {"q2 row 2", "padding code 127"});
  }
  {
    auto d = low(2, false);
    d.group_scales[1] = 0x7e00;  // fp16 NaN
    expect_rejected(d.view(), {"group_scales[1]", "not finite"});
  }
  {
    auto d = low(3, false);
    d.scales.assign(3, 1.0f);
    expect_rejected(d.view(), {"unexpected part scales"});
  }
  {
    auto d = low(3, false);
    d.layout = Layout::NM;  // int3 is dense only
    d.n = 2, d.m = 4;
    expect_rejected(d.view(), {"layout nm does not take encoding int3"});
  }
  {
    auto d = low(2, false);
    d.layout = Layout::MdCsr;
    expect_rejected(d.view(), {"layout mdcsr does not take encoding int2"});
  }
  {
    auto d = low(3, false);
    d.encoding = Encoding::Int2;  // int3's planes read as int2: the size is wrong
    expect_rejected(d.view(), {"q2 has"});
  }
}

}  // namespace
}  // namespace upg::format
