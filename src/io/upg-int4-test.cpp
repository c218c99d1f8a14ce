// UPG files with grouped values (docs/FORMAT.md 4.3: int4, int3, int2): they load as
// written, and each corrupted part is rejected with one line naming the file, the tensor
// and the part.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/safetensors-test-util.h"
#include "io/upg-test-util.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg::io {
namespace {

using testing::expect_error;
using testing::FileImage;

const std::string kDense = "model.layers.0.self_attn.q_proj.weight";   // g64, zero points, 100 columns
const std::string kDense128 = "model.layers.0.self_attn.o_proj.weight"; // g128 symmetric
const std::string kNm = "model.layers.0.mlp.gate_proj.weight";           // 2:4, g32, symmetric
const std::string kInt3 = "model.layers.0.mlp.up_proj.weight";           // int3 g32, zero points, 200 columns
const std::string kInt2 = "model.layers.0.mlp.down_proj.weight";         // int2 g128 symmetric, 100 columns

class UpgInt4 : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = dir_.file("good.upg");
    bad_ = dir_.file("bad.upg");
    UpgWriter w(good_, testing::tiny_header());
    w.add_compressed(kDense, testing::dense_int4(5, 100, 64, true, 1));
    w.add_compressed(kDense128, testing::dense_int4(3, 200, 128, false, 2));
    w.add_compressed(kNm, testing::nm_int4(4, 64, 2, 4, 32, false, 3));
    w.add_compressed(kInt3, testing::dense_int4(6, 200, 32, true, 4, 3));
    w.add_compressed(kInt2, testing::dense_int4(2, 100, 128, false, 5, 2));
    w.finish();
  }
  void expect_rejected(const FileImage& img, const std::string& tensor, const std::string& what) {
    img.write(bad_);
    expect_error([&] { load_model_source(bad_); }, {bad_, what, "'" + tensor + "'"});
  }
  testing::TempDir dir_;
  std::string good_, bad_;
};

TEST_F(UpgInt4, LoadsAsWritten) {
  ModelSource src = load_model_source(good_);
  ASSERT_EQ(src.compressed.size(), 5u);
  const format::CompressedData want = testing::dense_int4(5, 100, 64, true, 1);
  const format::CompressedMatrix& got = src.compressed.at(kDense);
  EXPECT_EQ(got.layout, format::Layout::Dense);
  EXPECT_EQ(got.encoding, format::Encoding::Int4);
  EXPECT_EQ(got.int4.group_size, 64);
  EXPECT_EQ(format::decode_dense(got), format::decode_dense(want.view()));
  const format::CompressedData nm = testing::nm_int4(4, 64, 2, 4, 32, false, 3);
  EXPECT_EQ(format::decode_dense(src.compressed.at(kNm)), format::decode_dense(nm.view()));
  EXPECT_TRUE(src.compressed.at(kNm).int4.group_zeros.empty());
  for (auto [name, bits, want_low] : {std::tuple{kInt3, 3, testing::dense_int4(6, 200, 32, true, 4, 3)},
                                      {kInt2, 2, testing::dense_int4(2, 100, 128, false, 5, 2)}}) {
    const format::CompressedMatrix& low = src.compressed.at(name);
    EXPECT_EQ(low.encoding, format::grouped_encoding(bits));
    EXPECT_EQ(std::vector<uint8_t>(low.int4.codes.begin(), low.int4.codes.end()), want_low.q4);
    EXPECT_EQ(format::decode_dense(low), format::decode_dense(want_low.view()));
  }
  const nlohmann::json j = FileImage(good_).tensors_json();
  EXPECT_EQ(j[kInt3]["encoding"], "int3");
  EXPECT_EQ(j[kInt2]["encoding"], "int2");
}

TEST_F(UpgInt4, RejectsBadFields) {
  // Each case edits one upg.tensors entry of the good file.
  const struct {
    std::string tensor, field;
    nlohmann::json value;  // null: the field is removed
    const char* what;
  } cases[] = {
      {kDense, "group_size", 48, "group_size"},
      {kDense, "zero_points", nullptr, "zero_points"},
      {kDense, "zero_points", false, "group_zeros"},  // group_zeros then belongs to nothing
      {kDense128, "layout", "mdcsr", "not defined for the mdcsr layout"},
      {kDense128, "entries", 601, "entries 601"},
      {kDense128, "group_size", 64, "group_scales"},  // group_scales now has the wrong shape
      {kInt3, "encoding", "int2", "q2"},                // its codes part is q3
      {kInt3, "layout", "nm", "not defined for the nm layout"},
      {kInt2, "encoding", "int5", "unknown encoding"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.tensor + " " + c.field);
    FileImage img(good_);
    auto j = img.tensors_json();
    if (c.value.is_null()) j[c.tensor].erase(c.field);
    else j[c.tensor][c.field] = c.value;
    img.set_tensors_json(j);
    expect_rejected(img, c.tensor, c.what);
  }
}

TEST_F(UpgInt4, RejectsBadParts) {
  {
    FileImage img(good_);
    img.erase(kNm + ".q4");
    expect_rejected(img, kNm, "missing part");
  }
  {
    FileImage img(good_);
    img.get(kDense + ".group_scales").dtype = DType::BF16;
    expect_rejected(img, kDense, "is BF16, expected F16");
  }
  {
    FileImage img(good_);
    img.as<uint16_t>(kDense128 + ".group_scales")[3] = 0x7e00;  // fp16 NaN
    expect_rejected(img, kDense128, "group_scales[3]");
  }
  {
    FileImage img(good_);
    uint8_t* pos = img.as<uint8_t>(kNm + ".nm_positions");
    pos[0] = uint8_t((pos[0] & ~0x0C) | ((pos[0] & 0x03) << 2));
    expect_rejected(img, kNm, "used twice");
  }
  {
    FileImage img(good_);
    auto scales = img.get(kDense + ".group_scales");
    scales.name = kNm + ".scales";
    scales.dtype = DType::F32;
    scales.shape = {5};  // 20 bytes
    img.tensors.push_back(scales);
    expect_rejected(img, kNm, "does not belong");
  }
  // One byte of a U8 part set (or, with `bits`, those bits or'ed in).
  const struct {
    std::string tensor;
    const char* part;
    size_t index;
    uint8_t value;
    bool bits;
    const char* what;
  } bytes[] = {
      {kDense, ".group_zeros", 7, 200, false, "group_zeros[7] = 200"},
      // 100 values a row: the high nibble of byte 32 + 5 is value 101, padding.
      {kDense, ".q4", 64 + 32 + 5, 0x10, true, "padding code 101"},
      {kInt3, ".group_zeros", 4, 8, false, "group_zeros[4] = 8"},
      // 100 values a row in 2 planes of 8 bytes per 64: value 100 + 3 is bit 7 of byte 4
      // of row 1's second block's first plane.
      {kInt2, ".q2", 32 + 16 + 4, 0x80, true, "padding code 103"},
  };
  for (const auto& b : bytes) {
    SCOPED_TRACE(b.tensor + b.part);
    FileImage img(good_);
    uint8_t& byte = img.as<uint8_t>(b.tensor + b.part)[b.index];
    byte = b.bits ? uint8_t(byte | b.value) : b.value;
    expect_rejected(img, b.tensor, b.what);
  }
}

}  // namespace
}  // namespace upg::io
