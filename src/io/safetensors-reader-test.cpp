#include "io/safetensors-reader.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors-test-util.h"

namespace upg::io {
namespace {

using testing::expect_error;
using testing::raw_safetensors;
using testing::TempDir;
using testing::write_file;

TEST(SafetensorsReader, ReadsHandWrittenFile) {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  std::string data(16, '\0');
  float vals[3] = {1.5f, -2.0f, 0.25f};
  std::memcpy(data.data(), vals, 12);
  data[12] = 7;
  data[13] = 1;
  write_file(path, raw_safetensors(
                       R"({"__metadata__":{"format":"pt","z":"last"},"w":{"dtype":"F32","shape":[3],)"
                       R"("data_offsets":[0,12]},"b":{"dtype":"U8","shape":[1,2],"data_offsets":[12,14]},)"
                       R"("e":{"dtype":"BF16","shape":[0,4],"data_offsets":[14,14]}})",
                       data));
  SafetensorsFile f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.tensors[0].name, "w");
  EXPECT_EQ(f.tensors[0].dtype, DType::F32);
  EXPECT_EQ(f.tensors[0].shape, std::vector<int64_t>{3});
  EXPECT_EQ(f.tensors[0].nbytes, 12u);
  EXPECT_EQ(std::memcmp(f.tensors[0].data, vals, 12), 0);
  // Zero-copy: the view points into the mapping, right after the header.
  EXPECT_EQ(f.tensors[0].data, f.file->data() + f.data_start);
  EXPECT_EQ(f.tensors[1].name, "b");
  EXPECT_EQ(f.tensors[1].dtype, DType::U8);
  EXPECT_EQ(f.tensors[1].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(std::to_integer<int>(f.tensors[1].data[0]), 7);
  EXPECT_EQ(f.tensors[2].numel(), 0);
  EXPECT_EQ(f.tensors[2].nbytes, 0u);
  ASSERT_EQ(f.metadata.size(), 2u);
  EXPECT_EQ(f.metadata[0], (std::pair<std::string, std::string>{"format", "pt"}));
  EXPECT_EQ(f.metadata[1], (std::pair<std::string, std::string>{"z", "last"}));
}

TEST(SafetensorsReader, DtypeNames) {
  for (const char* n : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL"}) {
    auto t = safetensors_dtype(n);
    ASSERT_TRUE(t) << n;
    EXPECT_STREQ(safetensors_dtype_name(*t), n);
  }
  EXPECT_FALSE(safetensors_dtype("F8_E4M3"));
  EXPECT_FALSE(safetensors_dtype("f32"));
  EXPECT_THROW(safetensors_dtype_name(DType::Q4_0), Error);
}

// Each corrupt file must give one upg::Error naming the file and what is wrong.
class SafetensorsCorrupt : public ::testing::Test {
 protected:
  void expect(const std::string& bytes, std::initializer_list<std::string> parts) {
    write_file(path_, bytes);
    std::vector<std::string> all(parts);
    all.push_back(path_);
    try {
      read_safetensors(path_);
      ADD_FAILURE() << "no upg::Error thrown";
    } catch (const Error& e) {
      std::string msg = e.what();
      for (const auto& p : all) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
  // A header with one tensor entry `entry` and `data_size` bytes of data.
  void expect_entry(const std::string& entry, size_t data_size, std::initializer_list<std::string> parts) {
    std::vector<std::string> all(parts);
    all.push_back("tensor 'x'");
    std::string bytes = raw_safetensors(R"({"x":)" + entry + "}", std::string(data_size, '\0'));
    write_file(path_, bytes);
    try {
      read_safetensors(path_);
      ADD_FAILURE() << "no upg::Error thrown for " << entry;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path_), std::string::npos) << msg;
      for (const auto& p : all) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
  TempDir dir_;
  std::string path_ = dir_.file("bad.safetensors");
};

TEST_F(SafetensorsCorrupt, ShorterThanEightBytes) {
  expect("", {"too short"});
  expect(std::string("\x05\0\0", 3), {"is 3 bytes", "too short"});
}

TEST_F(SafetensorsCorrupt, HeaderLengthPastEof) {
  std::string s = raw_safetensors("{}");
  s[0] = 40;  // claims 40 bytes of header, 2 present
  expect(s, {"header length 40", "past the end of the file"});
}

TEST_F(SafetensorsCorrupt, HeaderLengthAbsurd) {
  std::string s(16, ' ');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(0xFF);
  expect(s, {"header length 18446744073709551615", "limit"});
  s[7] = 0;
  s[6] = 0x10;  // ~4.5e15: still over the 100 MB cap, checked before anything is read
  expect(s, {"exceeds the 100000000 byte limit"});
}

TEST_F(SafetensorsCorrupt, InvalidJson) { expect(raw_safetensors(R"({"x": {"dtype": )"), {"not valid JSON"}); }

TEST_F(SafetensorsCorrupt, DeeplyNestedJson) {
  // 130k levels in a 260 KB header segfaulted the release build.
  expect(raw_safetensors("{\"a\":" + std::string(130000, '[') + std::string(130000, ']') + "}"),
         {"header: not valid JSON: nested deeper than 64 levels"});
}

TEST_F(SafetensorsCorrupt, OverlappingTensorData) {
  const std::string data(16, '\0');
  // Two tensors at one offset; one shifted by a byte into its neighbour.
  expect(raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                         data),
         {"tensors \"a\" (bytes [0, 8)) and \"b\" (bytes [0, 8)) overlap"});
  expect(raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[1,9]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                         data),
         {"\"a\" (bytes [1, 9)) and \"b\" (bytes [8, 16)) overlap"});
}

TEST_F(SafetensorsCorrupt, JsonNotAnObject) {
  expect(raw_safetensors("[1, 2]"), {"must be a JSON object", "array"});
  expect(raw_safetensors("\"text\""), {"must be a JSON object", "string"});
}

TEST_F(SafetensorsCorrupt, BadMetadata) {
  expect(raw_safetensors(R"({"__metadata__": [1]})"), {"'__metadata__' must be an object"});
  expect(raw_safetensors(R"({"__metadata__": {"format": 3}})"), {"'__metadata__.format' must be a string"});
}

TEST_F(SafetensorsCorrupt, EntryNotObject) { expect_entry("[1]", 0, {"must be an object"}); }

TEST_F(SafetensorsCorrupt, MissingFields) {
  expect_entry(R"({"shape":[1],"data_offsets":[0,4]})", 4, {"missing 'dtype'"});
  expect_entry(R"({"dtype":"F32","data_offsets":[0,4]})", 4, {"missing 'shape'"});
  expect_entry(R"({"dtype":"F32","shape":[1]})", 4, {"missing 'data_offsets'"});
}

TEST_F(SafetensorsCorrupt, WrongFieldTypes) {
  expect_entry(R"({"dtype":5,"shape":[1],"data_offsets":[0,4]})", 4, {"'dtype' must be a string"});
  expect_entry(R"({"dtype":"F32","shape":4,"data_offsets":[0,4]})", 4, {"'shape' must be an array"});
  expect_entry(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", 4, {"shape dimension", "integer"});
  expect_entry(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})", 4, {"shape dimension", "integer"});
  expect_entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})", 8, {"'data_offsets' must be [begin, end]"});
  expect_entry(R"({"dtype":"F32","shape":[1],"data_offsets":{"a":1}})", 4, {"'data_offsets' must be [begin, end]"});
  expect_entry(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,4]})", 4, {"data_offsets begin", "negative"});
}

TEST_F(SafetensorsCorrupt, UnknownDtype) {
  expect_entry(R"({"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]})", 1, {"unsupported dtype 'F8_E4M3'"});
  expect_entry(R"({"dtype":"Q4_0","shape":[32],"data_offsets":[0,18]})", 18, {"unsupported dtype 'Q4_0'"});
}

TEST_F(SafetensorsCorrupt, NegativeShape) {
  expect_entry(R"({"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]})", 0, {"shape dimension -1 is negative"});
}

TEST_F(SafetensorsCorrupt, OffsetsReversed) {
  expect_entry(R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})", 8, {"data_offsets [8, 4] are reversed"});
}

TEST_F(SafetensorsCorrupt, OffsetsPastEof) {
  expect_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 6,
               {"data_offsets [0, 8] past the end of the data (6 bytes)"});
  expect_entry(R"({"dtype":"U8","shape":[0],"data_offsets":[0,18446744073709551615]})", 0,
               {"data_offsets end", "too large"});
}

TEST_F(SafetensorsCorrupt, SizeMismatch) {
  expect_entry(R"({"dtype":"F16","shape":[2,3],"data_offsets":[0,8]})", 16,
               {"data_offsets [0, 8] hold 8 bytes", "F16 shape [2,3] needs 12"});
}

TEST_F(SafetensorsCorrupt, ShapeProductOverflow) {
  expect_entry(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0,
               {"overflows the element count"});
  expect_entry(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]})", 0,
               {"overflows the byte size"});
  // A zero dimension makes the product 0 even with huge neighbours: valid, empty.
  write_file(path_, raw_safetensors(R"({"x":{"dtype":"U8","shape":[0,9223372036854775807],"data_offsets":[0,0]}})"));
  EXPECT_EQ(read_safetensors(path_).tensors.at(0).nbytes, 0u);
}

TEST_F(SafetensorsCorrupt, DeepNestingIsNotDumped) {
  // A bad value is named by its type, not quoted: dumping nests as deep as the value (the
  // parser refuses more than 64 levels, DeeplyNestedJson; this stays under that).
  std::string deep = std::string(60, '[') + std::string(60, ']');
  expect_entry(R"({"dtype":)" + deep + "}", 0, {"'dtype' must be a string, got array"});
  expect_entry(R"({"dtype":"F32","shape":[1],"data_offsets":)" + deep + "}", 0, {"'data_offsets' must be"});
}

TEST(SafetensorsReader, MissingFileNamesPath) {
  expect_error([] { read_safetensors("/nonexistent/dir/model.safetensors"); },
               {"/nonexistent/dir/model.safetensors", "cannot open"});
}

}  // namespace
}  // namespace upg::io
