// Corrupted UPG files, one per loader rule (docs/FORMAT.md): each must be rejected with
// one upg::Error line naming the file and the tensor. A valid file is written once,
// then each test edits a copy (FileImage) and loads it through load_model_source.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/safetensors-test-util.h"
#include "io/upg-test-util.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg::io {
namespace {

using testing::expect_error;
using testing::FileImage;

const std::string kInt8 = "model.layers.0.self_attn.q_proj.weight";
const std::string kPrime = "model.layers.0.self_attn.k_proj.weight";
const std::string kCodebook = "model.layers.0.self_attn.v_proj.weight";
const std::string kNM24 = "model.layers.0.mlp.gate_proj.weight";
const std::string kNM48 = "model.layers.0.mlp.up_proj.weight";

class UpgCorrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = dir_.file("good.upg");
    bad_ = dir_.file("bad.upg");
    UpgWriter w(good_, testing::tiny_header());
    for (const auto& k : testing::every_kind()) w.add_compressed(k.name, k.data);
    const std::vector<float> norm(8, 1.0f);
    w.add_dense("model.norm.weight", DType::F32, {8}, testing::bytes_of(norm));
    w.finish();
  }
  // Writes the edited image and expects load_model_source to fail naming the file and
  // the tensor (when given) plus `what`.
  void expect_rejected(const FileImage& img, const std::string& tensor, const std::string& what) {
    img.write(bad_);
    if (tensor.empty())
      expect_error([&] { load_model_source(bad_); }, {bad_, what});
    else
      expect_error([&] { load_model_source(bad_); }, {bad_, what, "'" + tensor + "'"});
  }

  testing::TempDir dir_;
  std::string good_, bad_;
};

TEST_F(UpgCorrupt, GoodFileLoads) {
  ModelSource src = load_model_source(good_);
  EXPECT_EQ(src.compressed.size(), 5u);
  // An unedited image written back is still valid: the harness itself changes nothing.
  FileImage(good_).write(bad_);
  EXPECT_EQ(load_model_source(bad_).compressed.size(), 5u);
}

TEST_F(UpgCorrupt, WrongVersion) {
  FileImage img(good_);
  img.meta("upg.version") = "3";
  expect_rejected(img, "", "unsupported UPG version '3'");
}

TEST_F(UpgCorrupt, MissingPart) {
  FileImage img(good_);
  img.erase(kInt8 + ".delta_indices");
  expect_rejected(img, kInt8, "missing part");
  FileImage img2(good_);
  img2.erase(kCodebook + ".codebook");
  expect_rejected(img2, kCodebook, "missing part");
  FileImage img3(good_);
  img3.erase(kNM24 + ".nm_positions");
  expect_rejected(img3, kNM24, "missing part");
}

TEST_F(UpgCorrupt, UnknownLayout) {
  FileImage img(good_);
  auto j = img.tensors_json();
  j[kPrime]["layout"] = "coo";
  img.set_tensors_json(j);
  expect_rejected(img, kPrime, "unknown layout");
}

TEST_F(UpgCorrupt, UnknownEncoding) {
  FileImage img(good_);
  auto j = img.tensors_json();
  j[kInt8]["encoding"] = "float4";
  img.set_tensors_json(j);
  expect_rejected(img, kInt8, "unknown encoding");
}

TEST_F(UpgCorrupt, RowPointersOfWrongLength) {
  FileImage img(good_);
  auto& rp = img.get(kInt8 + ".row_pointers");
  rp.shape[0] -= 1;
  rp.bytes.resize(rp.bytes.size() - 4);
  expect_rejected(img, kInt8, "row_pointers");
}

TEST_F(UpgCorrupt, DecreasingRowPointer) {
  FileImage img(good_);
  uint32_t* rp = img.as<uint32_t>(kPrime + ".row_pointers");
  ASSERT_GT(rp[1], 0u);
  rp[2] = rp[1] - 1;
  expect_rejected(img, kPrime, "decreases");
}

TEST_F(UpgCorrupt, ColumnPastCols) {
  FileImage img(good_);
  // Row 0 of the test matrix ends on the last column; one more step leaves the matrix.
  const uint32_t* rp = img.as<uint32_t>(kInt8 + ".row_pointers");
  uint8_t* delta = img.as<uint8_t>(kInt8 + ".delta_indices");
  delta[rp[1] - 1] += 1;
  expect_rejected(img, kInt8, "past cols");
}

TEST_F(UpgCorrupt, PrimeIndexPast10000) {
  FileImage img(good_);
  img.as<uint16_t>(kPrime + ".prime_indices")[3] = 10001 | format::kPrimeSignBit;
  expect_rejected(img, kPrime, "past 10000");
}

TEST_F(UpgCorrupt, CodebookIndexPastK) {
  FileImage img(good_);
  img.as<uint16_t>(kCodebook + ".prime_indices")[0] = 16;
  expect_rejected(img, kCodebook, "past the codebook");
}

// With M a power of two, a log2(M)-bit position cannot name a slot outside its group;
// the only bits that could point past a row's groups are the unused ones after its
// last position, which must be zero.
TEST_F(UpgCorrupt, NMPositionOutsideItsGroup) {
  FileImage img(good_);
  auto& pos = img.get(kNM48 + ".nm_positions");
  ASSERT_EQ(pos.shape, (std::vector<int64_t>{3, 5}));  // 12 values x 3 bits = 36 bits
  pos.bytes[4] |= std::byte{0x80};
  expect_rejected(img, kNM48, "unused high bits");
}

TEST_F(UpgCorrupt, NMTwoValuesOnOnePosition) {
  FileImage img(good_);
  uint8_t* pos = img.as<uint8_t>(kNM24 + ".nm_positions");
  // 2:4, 2 bits each: value 1 of group 0 takes value 0's position.
  pos[0] = uint8_t((pos[0] & ~0x0C) | ((pos[0] & 0x03) << 2));
  expect_rejected(img, kNM24, "used twice");
}

TEST_F(UpgCorrupt, SizesDisagreeWithShape) {
  FileImage img(good_);
  auto j = img.tensors_json();
  j[kInt8]["shape"][0] = 6;  // one row more than the parts hold
  img.set_tensors_json(j);
  expect_rejected(img, kInt8, "has shape");

  FileImage img2(good_);
  auto& scales = img2.get(kNM48 + ".scales");
  scales.shape[0] += 1;
  scales.bytes.resize(scales.bytes.size() + 4);
  expect_rejected(img2, kNM48, "has shape");

  FileImage img3(good_);
  auto j3 = img3.tensors_json();
  j3[kCodebook]["entries"] = j3[kCodebook]["entries"].get<int64_t>() + 1;
  img3.set_tensors_json(j3);
  expect_rejected(img3, kCodebook, "has shape");

  FileImage img4(good_);
  auto j4 = img4.tensors_json();
  j4[kNM24]["shape"][1] = 20;  // 20 columns do not hold the stored 2:4 groups
  img4.set_tensors_json(j4);
  expect_rejected(img4, kNM24, "disagree with shape");
}

TEST_F(UpgCorrupt, PartOfWrongDtype) {
  FileImage img(good_);
  img.get(kInt8 + ".values").dtype = DType::U8;
  expect_rejected(img, kInt8, "is U8, expected I8");
}

TEST_F(UpgCorrupt, PartOfAnotherEncoding) {
  FileImage img(good_);
  auto values = img.get(kInt8 + ".values");
  values.name = kPrime + ".values";
  img.tensors.push_back(values);
  expect_rejected(img, kPrime, "does not belong");
}

TEST_F(UpgCorrupt, CompressedNameAlsoDense) {
  FileImage img(good_);
  img.tensors.push_back({kNM24, DType::F32, {1}, std::vector<std::byte>(4)});
  expect_rejected(img, kNM24, "both dense and compressed");
}

TEST_F(UpgCorrupt, MalformedTensorsJson) {
  FileImage img(good_);
  img.meta("upg.tensors") = "{\"" + kInt8 + "\": {\"layout\": ";
  expect_rejected(img, "", "'upg.tensors': not valid JSON");

  FileImage img2(good_);
  img2.meta("upg.tensors") = "[1, 2]";
  expect_rejected(img2, "", "must be a JSON object");

  FileImage img3(good_);
  auto j = img3.tensors_json();
  j[kPrime].erase("entries");
  img3.set_tensors_json(j);
  expect_rejected(img3, kPrime, "'entries' is missing");

  FileImage img4(good_);
  auto j4 = img4.tensors_json();
  j4[kNM48]["m"] = 6;
  img4.set_tensors_json(j4);
  expect_rejected(img4, kNM48, "M = 6");

  FileImage img5(good_);
  auto j5 = img5.tensors_json();
  j5[kCodebook]["codebook_size"] = 70000;
  img5.set_tensors_json(j5);
  expect_rejected(img5, kCodebook, "codebook_size");
}

TEST_F(UpgCorrupt, MissingMetadataAndBadTokenizer) {
  FileImage img(good_);
  std::erase_if(img.metadata, [](auto& kv) { return kv.first == "upg.tensors"; });
  expect_rejected(img, "", "'upg.tensors' is missing");

  FileImage img2(good_);
  img2.meta("upg.config") = R"({"architectures": ["GPTNeoXForCausalLM"]})";
  expect_rejected(img2, "", "unsupported architecture");

  FileImage img3(good_);
  img3.get("upg.tokenizer_json").dtype = DType::I8;
  expect_rejected(img3, "upg.tokenizer_json", "must be U8");
}

TEST_F(UpgCorrupt, NotUpgAtAll) {
  EXPECT_FALSE(is_upg_file(dir_.file("absent.upg")));
  testing::write_file(bad_, "not a safetensors file at all");
  EXPECT_FALSE(is_upg_file(bad_));
  expect_error([&] { load_upg(bad_, {}); }, {bad_});
  // A plain safetensors file is not UPG; load_upg says so.
  const std::string plain = dir_.file("plain.safetensors");
  const std::vector<float> x = {1.0f};
  TensorView v{"x", DType::F32, {1}, reinterpret_cast<const std::byte*>(x.data()), 4};
  write_safetensors(plain, {v});
  EXPECT_FALSE(is_upg_file(plain));
  expect_error([&] { load_upg(plain, {}); }, {plain, "not a UPG file"});
}

}  // namespace
}  // namespace upg::io
