// One corrupted copy per loader rule: validate() must reject it with one line naming the
// tensor and the part.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "format/format-test-util.h"
#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::format {
namespace {

const std::string kName = "model.layers.3.mlp.up_proj.weight";

// The error message contains every fragment (the tensor name is always required).
void expect_rejected(const CompressedMatrix& m, std::initializer_list<const char*> fragments) {
  testing::expect_rejected(m, kName, fragments);
}

// 3 rows x 600 cols; row 1 is empty, row 2 needs padding (column 590).
CompressedData mdcsr(Encoding enc) {
  std::vector<SparseRow> rows = {{{0, 4, 9}, {1, 2, 3}, 0.5f}, {{}, {}, 1.0f}, {{7, 590}, {4, 5}, 2.0f}};
  std::vector<float> cb;
  if (enc == Encoding::Codebook) cb = {0.0f, 0.5f, -1.0f, 2.0f, 3.0f, 4.0f};
  return encode_mdcsr(600, rows, enc, cb);
}

// 2:4, 2 rows x 8 cols.
CompressedData nm() {
  std::vector<SparseRow> rows = {{{0, 3, 5, 6}, {1, 2, 3, 4}, 0.5f}, {{1, 7}, {5, 6}, 1.0f}};
  return encode_nm(8, rows, 2, 4);
}

TEST(Validate, AcceptsWellFormed) {
  for (Encoding e : {Encoding::Int8, Encoding::Prime, Encoding::Codebook}) EXPECT_NO_THROW(validate(mdcsr(e).view(), kName));
  EXPECT_NO_THROW(validate(nm().view(), kName));
}

TEST(Validate, RowPointersStartAtZero) {
  auto d = mdcsr(Encoding::Int8);
  d.row_pointers[0] = 1;
  expect_rejected(d.view(), {"row_pointers[0] = 1", "start at 0"});
}

TEST(Validate, RowPointersNeverDecrease) {
  auto d = mdcsr(Encoding::Int8);
  d.row_pointers[2] = 1;  // was 3
  expect_rejected(d.view(), {"row_pointers[2] = 1 decreases from 3"});
}

TEST(Validate, RowPointersDoNotOverrun) {
  auto d = mdcsr(Encoding::Int8);
  d.row_pointers[1] = 100;
  d.row_pointers[2] = 100;
  expect_rejected(d.view(), {"row_pointers[1] = 100 overruns"});
}

TEST(Validate, RowPointersEndAtTheEntryCount) {
  auto d = mdcsr(Encoding::Int8);
  d.row_pointers.back() -= 1;
  expect_rejected(d.view(), {"row_pointers[3]", "does not end at the entry count"});
}

TEST(Validate, RowPointersSizeAgreesWithRows) {
  auto d = mdcsr(Encoding::Int8);
  d.row_pointers.push_back(d.row_pointers.back());
  expect_rejected(d.view(), {"row_pointers has 5 elements, expected 4"});
}

TEST(Validate, ColumnPastCols) {
  auto d = mdcsr(Encoding::Int8);
  d.delta_indices[2] = 250;  // row 0: 0, 4, 254 -> fine; make the sum overflow instead
  CompressedMatrix m = d.view();
  m.cols = 200;
  expect_rejected(m, {"delta_indices[2]", "row 0 at column 254", "past cols 200"});
}

TEST(Validate, PaddingColumnPastCols) {
  // Row 2 is 7 then padding to 262 then 590: with cols 260 the padding entry itself is out.
  const auto d = mdcsr(Encoding::Int8);
  CompressedMatrix m = d.view();
  m.cols = 260;
  expect_rejected(m, {"delta_indices[4]", "column 262", "past cols 260"});
}

TEST(Validate, RepeatedColumn) {
  auto d = mdcsr(Encoding::Int8);
  d.delta_indices[1] = 0;
  expect_rejected(d.view(), {"delta_indices[1] = 0 repeats column 0 of row 0"});
}

TEST(Validate, PrimeIndexPast10000) {
  auto d = mdcsr(Encoding::Prime);
  d.prime_indices[1] = 0x8000 | 10001;
  expect_rejected(d.view(), {"prime_indices[1]", "index 10001 past 10000"});
  d.prime_indices[1] = 10001;
  expect_rejected(d.view(), {"prime_indices[1]", "index 10001"});
  d.prime_indices[1] = 0x8000 | 10000;  // the largest legal code
  EXPECT_NO_THROW(validate(d.view(), kName));
}

TEST(Validate, CodebookIndexPastK) {
  auto d = mdcsr(Encoding::Codebook);
  d.prime_indices[2] = 6;
  expect_rejected(d.view(), {"prime_indices[2] = 6 past the codebook's 6 entries"});
}

TEST(Validate, CodebookZeroFirst) {
  auto d = mdcsr(Encoding::Codebook);
  d.codebook[0] = 0.25f;
  expect_rejected(d.view(), {"codebook[0] = 0.25 must be 0"});
}

TEST(Validate, CodebookTooLarge) {
  auto d = mdcsr(Encoding::Codebook);
  d.codebook.resize(65537);
  expect_rejected(d.view(), {"codebook has 65537 entries"});
}

TEST(Validate, CodebookNotFinite) {
  auto d = mdcsr(Encoding::Codebook);
  d.codebook[3] = NAN;
  expect_rejected(d.view(), {"codebook[3] is not finite"});
}

TEST(Validate, MissingParts) {
  {
    auto d = mdcsr(Encoding::Int8);
    d.values.clear();
    expect_rejected(d.view(), {"values is missing"});
  }
  {
    auto d = mdcsr(Encoding::Prime);
    d.prime_indices.clear();
    expect_rejected(d.view(), {"prime_indices is missing"});
  }
  {
    auto d = mdcsr(Encoding::Codebook);
    d.codebook.clear();
    expect_rejected(d.view(), {"codebook is missing"});
  }
  {
    auto d = mdcsr(Encoding::Int8);
    d.row_pointers.clear();
    expect_rejected(d.view(), {"row_pointers is missing"});
  }
  {
    auto d = mdcsr(Encoding::Int8);
    d.scales.clear();
    expect_rejected(d.view(), {"scales is missing"});
  }
  {
    auto d = nm();
    d.positions.clear();
    expect_rejected(d.view(), {"nm_positions is missing"});
  }
  {
    auto d = nm();
    d.values.clear();
    expect_rejected(d.view(), {"nm_values is missing"});
  }
}

TEST(Validate, PartSizesAgreeWithTheShape) {
  {
    auto d = mdcsr(Encoding::Int8);
    d.values.pop_back();
    expect_rejected(d.view(), {"values has 6 elements, expected 7"});
  }
  {
    auto d = mdcsr(Encoding::Int8);
    d.scales.push_back(1.0f);
    expect_rejected(d.view(), {"scales has 4 elements, expected 3"});
  }
  {
    auto d = nm();
    d.values.push_back(0);
    expect_rejected(d.view(), {"nm_values has 9 elements, expected 8"});
  }
  {
    auto d = nm();
    d.positions.pop_back();
    expect_rejected(d.view(), {"nm_positions has 1 elements, expected 2"});
  }
}

TEST(Validate, UnexpectedParts) {
  auto d = mdcsr(Encoding::Int8);
  d.prime_indices.assign(d.values.size(), 0);
  expect_rejected(d.view(), {"unexpected part prime_indices", "int8"});
  auto n = nm();
  n.row_pointers = {0};
  expect_rejected(n.view(), {"unexpected part row_pointers", "layout nm"});
}

TEST(Validate, Int8Range) {
  auto d = mdcsr(Encoding::Int8);
  d.values[1] = -128;
  expect_rejected(d.view(), {"values[1] = -128"});
  auto n = nm();
  n.values[3] = -128;
  expect_rejected(n.view(), {"nm_values[3] = -128"});
}

TEST(Validate, ScalesFinite) {
  auto d = nm();
  d.scales[1] = INFINITY;
  expect_rejected(d.view(), {"scales[1] = inf is not finite"});
}

TEST(Validate, ShapeInRange) {
  const auto d = mdcsr(Encoding::Int8);
  CompressedMatrix m = d.view();
  m.cols = 0;
  expect_rejected(m, {"shape [3, 0]"});
  m.cols = 600;
  m.rows = -1;
  expect_rejected(m, {"shape [-1, 600]"});
}

TEST(Validate, NMTwoValuesOnOnePosition) {
  auto d = nm();
  // Row 0 group 0 holds positions 0 and 3 (bits 0-1 and 2-3 of byte 0); point the
  // second at position 0 too.
  ASSERT_EQ(d.positions[0] & 0x0f, 0x0c);
  d.positions[0] &= 0xf3;
  expect_rejected(d.view(), {"nm_positions row 0 value 1: position 0 used twice in group 0"});
}

TEST(Validate, NMUnusedBitsZero) {
  // 1:2 over 6 columns: 3 positions of 1 bit, so bits 3-7 of each row's byte are unused.
  std::vector<SparseRow> rows = {{{1, 2}, {1, 2}, 1.0f}};
  auto d = encode_nm(6, rows, 1, 2);
  ASSERT_NO_THROW(validate(d.view(), kName));
  d.positions[0] |= 0x80;
  expect_rejected(d.view(), {"nm_positions row 0", "unused high bits"});
}

TEST(Validate, NMGeometry) {
  {
    auto d = nm();
    CompressedMatrix m = d.view();
    m.nm.m = 3;
    expect_rejected(m, {"M = 3 unsupported"});
    m.nm.m = 4;
    m.nm.n = 4;
    expect_rejected(m, {"N = 4 outside 1..3"});
    m.nm.n = 2;
    m.cols = 10;
    expect_rejected(m, {"cols 10 is not a multiple of M = 4"});
  }
  {
    auto d = nm();
    d.encoding = Encoding::Prime;
    expect_rejected(d.view(), {"layout nm does not take encoding prime"});
  }
}

TEST(Validate, UnknownLayoutOrEncoding) {
  auto d = mdcsr(Encoding::Int8);
  CompressedMatrix m = d.view();
  m.encoding = Encoding(9);
  expect_rejected(m, {"unknown encoding 9"});
  m.encoding = Encoding::Int8;
  m.layout = Layout(5);
  expect_rejected(m, {"unknown layout 5"});
  try {
    parse_layout("blocked", kName);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(kName + ": unknown layout \"blocked\""), std::string::npos) << e.what();
  }
  try {
    parse_encoding("fp4", kName);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(kName + ": unknown encoding \"fp4\""), std::string::npos) << e.what();
  }
}

TEST(Validate, EmptyMatrices) {
  const auto d = encode_mdcsr(5, {}, Encoding::Int8);
  EXPECT_NO_THROW(validate(d.view(), kName));
  const auto n = encode_nm(8, {}, 2, 4);
  EXPECT_NO_THROW(validate(n.view(), kName));
}

}  // namespace
}  // namespace upg::format
