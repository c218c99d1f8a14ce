#include "io/gguf-reader.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "io/gguf-loader.h"
#include "io/gguf-test-util.h"
#include "upg/io/gguf-writer.h"

namespace upg::io {
namespace {

using gguf_test::expect_error;
using gguf_test::patch;
using gguf_test::TempPath;
using gguf_test::write_bytes;

constexpr size_t kTensorCountAt = 8, kKvCountAt = 16, kFirstKeyAt = 24;

std::vector<std::byte> q8_row(int blocks) {
  std::vector<std::byte> b(size_t(blocks) * 34, std::byte{0});
  return b;
}

GgufWriter valid_writer() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  std::vector<float> x(64, 1.0f);
  w.add_f32("a.weight", {64}, x);
  return w;
}

// Writes w to a temp file and expects GgufFile::open to fail naming the file and `parts`.
void expect_open_error(const GgufWriter& w, std::initializer_list<std::string> parts) {
  TempPath p("gguf-bad");
  w.write(p.str());
  std::vector<std::string> all{p.str()};
  all.insert(all.end(), parts);
  try {
    GgufFile::open(p.str());
    ADD_FAILURE() << "expected upg::Error";
  } catch (const Error& e) {
    for (auto& s : all) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what() << " / " << s;
  }
}

void expect_bytes_error(const std::vector<std::byte>& b, std::initializer_list<std::string> parts) {
  TempPath p("gguf-bad");
  write_bytes(p.str(), b);
  std::string path = p.str();
  expect_error([&] { GgufFile::open(path); }, {path});
  expect_error([&] { GgufFile::open(path); }, parts);
}

TEST(GgufReader, ReadsEveryValueTypeWrittenByGgufPy) {
  GgufFile g = GgufFile::open(gguf_test::fixture("quant-types.gguf"));
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_u32("test.u8"), 200u);
  EXPECT_EQ(g.get_i32("test.i8"), -100);
  EXPECT_EQ(g.get_u32("test.u16"), 60000u);
  EXPECT_EQ(g.get_i32("test.i16"), -30000);
  EXPECT_EQ(g.get_u32("test.u32"), 4000000000u);
  EXPECT_EQ(g.get_i32("test.i32"), -2000000000);
  EXPECT_EQ(g.get_u64("test.u64"), uint64_t(1) << 40);
  EXPECT_EQ(int64_t(g.find("test.i64")->bits), -(int64_t(1) << 40));
  EXPECT_EQ(g.get_f32("test.f32"), 0.15625f);
  EXPECT_EQ(g.get_f32("test.f64"), -2.5f);
  EXPECT_TRUE(g.get_bool("test.bool"));
  EXPECT_EQ(g.get_string("test.string"), "h\xc3\xa9llo");
  EXPECT_EQ(g.get_i32_array("test.i32_array"), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(g.get_string_array("test.string_array"), (std::vector<std::string>{"a", "bc", ""}));
  EXPECT_EQ(g.get_f32_array("test.f32_array"), (std::vector<float>{0.5f, -1.0f}));
  const GgufArray& nested = g.get_array("test.nested");
  ASSERT_EQ(nested.elem_type, GgufType::ARRAY);
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested.arrays[0].ints, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(nested.arrays[1].ints, (std::vector<uint64_t>{3}));
  EXPECT_EQ(gguf_value_to_string(*g.find("test.nested")), "[[1, 2], [3]]");

  ASSERT_EQ(g.tensors().size(), 15u);
  const GgufTensorInfo* q = g.find_tensor("q4_k");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::Q4_K);
  EXPECT_EQ(q->ne, (std::vector<int64_t>{512, 2}));
  EXPECT_EQ(q->shape(), (std::vector<int64_t>{2, 512}));
  EXPECT_EQ(q->nbytes, 4u * 144u);
  EXPECT_EQ(q->offset % 32, 0u);
}

TEST(GgufReader, TypedAccessorErrorsNameTheKey) {
  GgufFile g = GgufFile::open(gguf_test::fixture("quant-types.gguf"));
  expect_error([&] { g.get_u32("nope.key"); }, {"quant-types.gguf", "'nope.key'", "missing"});
  expect_error([&] { g.get_u32("test.string"); }, {"'test.string'", "expected uint32, found string"});
  expect_error([&] { g.get_string("test.u32"); }, {"'test.u32'", "expected string, found uint32"});
  expect_error([&] { g.get_u32("test.i8"); }, {"'test.i8'", "out of range"});
  expect_error([&] { g.get_i32("test.u32"); }, {"'test.u32'", "out of range"});
  expect_error([&] { g.get_string_array("test.i32_array"); }, {"'test.i32_array'", "found array of int32"});
  expect_error([&] { g.get_f32("test.bool"); }, {"'test.bool'", "expected float32"});
  EXPECT_FALSE(g.opt_u32("nope").has_value());
  EXPECT_EQ(g.opt_string("test.string").value(), "h\xc3\xa9llo");
}

TEST(GgufWriterRoundTrip, WritesWhatTheReaderReads) {
  GgufWriter w(2);
  w.set_alignment(64);
  w.set_u32("k.u32", 7);
  w.set_i32("k.i32", -7);
  w.set_f32("k.f32", 1.5f);
  w.set_bool("k.bool", false);
  w.set_string_array("k.strs", {"x", "yz"});
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  w.add_f32("t0", {8}, x);
  w.add_f32("t1", {4, 2}, x);
  TempPath p("gguf-rt");
  w.write(p.str());
  GgufFile g = GgufFile::open(p.str());
  EXPECT_EQ(g.version(), 2u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.get_u32("k.u32"), 7u);
  EXPECT_EQ(g.get_i32("k.i32"), -7);
  EXPECT_EQ(g.get_f32("k.f32"), 1.5f);
  EXPECT_FALSE(g.get_bool("k.bool"));
  EXPECT_EQ(g.get_string_array("k.strs"), (std::vector<std::string>{"x", "yz"}));
  ASSERT_EQ(g.tensors().size(), 2u);
  EXPECT_EQ(g.data_offset() % 64, 0u);
  EXPECT_EQ(g.tensors()[1].offset, 64u);
  EXPECT_EQ(g.tensors()[1].shape(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(std::memcmp(g.tensors()[1].data, x.data(), 32), 0);
}

TEST(GgufReaderCorrupt, Header) {
  auto b = valid_writer().build();
  auto bad = b;
  std::memcpy(bad.data(), "GGUX", 4);
  expect_bytes_error(bad, {"bad magic 'GGUX'"});
  expect_bytes_error({}, {"magic needs 4 bytes"});
  expect_open_error(GgufWriter(1), {"unsupported GGUF version 1"});
  expect_open_error(GgufWriter(4), {"unsupported GGUF version 4"});
  bad = b;
  patch<uint32_t>(bad, 4, __builtin_bswap32(3u));
  expect_bytes_error(bad, {"big-endian"});
  expect_bytes_error({b.begin(), b.begin() + 10}, {"truncated file", "tensor count"});
  expect_bytes_error({b.begin(), b.begin() + 20}, {"truncated file", "metadata count"});
}

TEST(GgufReaderCorrupt, Metadata) {
  auto b = valid_writer().build();
  // header (24) + key length (8) + "general.architecture" (20) + type (4) + string length (8) + 2 bytes
  expect_bytes_error({b.begin(), b.begin() + 24 + 8 + 20 + 4 + 8 + 2},
                     {"metadata key 'general.architecture'", "string length 5", "runs past the end"});
  expect_bytes_error({b.begin(), b.begin() + 24 + 8 + 20 + 2},
                     {"metadata key 'general.architecture'", "truncated file", "value type"});
  auto bad = b;
  patch<uint64_t>(bad, kFirstKeyAt, uint64_t(1) << 40);
  expect_bytes_error(bad, {"metadata entry 0", "key length 1099511627776", "runs past the end"});
  bad = b;
  patch<uint64_t>(bad, kKvCountAt, uint64_t(1) << 60);
  expect_bytes_error(bad, {"metadata count 1152921504606846976 cannot fit"});
  bad = b;
  patch<uint32_t>(bad, kFirstKeyAt + 8 + 20, 13u);
  expect_bytes_error(bad, {"metadata key 'general.architecture'", "unknown value type 13"});

  GgufWriter w2;
  GgufArray huge;
  huge.elem_type = GgufType::UINT64;
  huge.ints = {1, 2, 3};
  w2.set("k.arr", GgufWriter::array(huge));
  auto a = w2.build();
  // Array length field: header 24 + key len 8 + "k.arr" 5 + type 4 + elem type 4.
  patch<uint64_t>(a, 24 + 8 + 5 + 4 + 4, uint64_t(1) << 61);
  expect_bytes_error(a, {"metadata key 'k.arr'", "array length 2305843009213693952 cannot fit"});

  GgufWriter w3;
  w3.set_bool("k.bool", true);
  auto bb = w3.build();
  patch<uint8_t>(bb, 24 + 8 + 6 + 4, 2);
  expect_bytes_error(bb, {"metadata key 'k.bool'", "bool value 2"});

  // Arrays nested deeper than any real file: each level holds the next.
  GgufArray deep;
  deep.elem_type = GgufType::UINT8;
  for (int i = 0; i < 12; ++i) {
    GgufArray outer;
    outer.elem_type = GgufType::ARRAY;
    outer.arrays.push_back(deep);
    deep = outer;
  }
  GgufWriter w4;
  w4.set("k.deep", GgufWriter::array(deep));
  expect_open_error(w4, {"metadata key 'k.deep'", "nested deeper"});
}

TEST(GgufReaderCorrupt, DuplicateKeyAndAlignment) {
  // Two keys with the same name: write "k.aa" and "k.ab", then patch the second.
  GgufWriter w;
  w.set_u32("k.aa", 1);
  w.set_u32("k.ab", 2);
  auto b = w.build();
  // Second key's last byte: 24 + (8 + 4 + 4 + 4) + 8 + 3.
  b[24 + 20 + 8 + 3] = std::byte{'a'};
  expect_bytes_error(b, {"metadata key 'k.aa'", "duplicate key"});

  for (uint32_t a : {0u, 3u, 1u << 20}) {
    GgufWriter wa = valid_writer();
    wa.set_alignment(a);
    expect_open_error(wa, {"general.alignment", "is not a power of two"});
  }
  GgufWriter ws = valid_writer();
  ws.set_string("general.alignment", "32");
  expect_open_error(ws, {"general.alignment", "expected uint32, found string"});
  GgufWriter wm = valid_writer();
  std::vector<std::byte> data(64 * 4);
  wm.add_tensor("b.weight", GGML_F32, {64}, data, 16);
  expect_open_error(wm, {"tensor 'b.weight'", "data offset 16 is not a multiple of the alignment 32"});
}

TEST(GgufReaderCorrupt, TensorInfos) {
  std::vector<std::byte> f32(256 * 4);
  auto with = [&](auto add) {
    GgufWriter w = valid_writer();
    add(w);
    return w;
  };
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_F32, {64}, {}, 1u << 20); }),
                    {"tensor 't.x'", "data [", "lies outside the file (size"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_F32, {64}, {}, ~uint64_t(31)); }),
                    {"tensor 't.x'", "overflows"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", 99, {64}, f32); }),
                    {"tensor 't.x'", "unsupported tensor type unknown (ggml type id 99)"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", 16, {256}, f32); }),
                    {"tensor 't.x'", "unsupported tensor type IQ2_XXS (ggml type id 16)"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_F32, {64, 0}, f32); }),
                    {"tensor 't.x'", "dim 1 is 0"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_F32, {1, 1, 1, 1, 1}, f32); }),
                    {"tensor 't.x'", "5 dims"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_F32, {}, f32); }),
                    {"tensor 't.x'", "0 dims"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_Q8_0, {33}, q8_row(2)); }),
                    {"tensor 't.x'", "ne[0] = 33 is not a multiple of the Q8_0 block size 32"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_F32, {1u << 31, 1u << 31, 1u << 31}, f32); }),
                    {"tensor 't.x'", "element count overflows"});
  expect_open_error(with([&](GgufWriter& w) { w.add_tensor("t.x", GGML_F32, {~uint64_t(0)}, f32); }),
                    {"tensor 't.x'", "dim 0 is -1"});
  expect_open_error(with([&](GgufWriter& w) { w.add_f32("a.weight", {64}, std::vector<float>(64)); }),
                    {"tensor 'a.weight'", "duplicate tensor name"});
  // Data that is truncated away.
  auto b = valid_writer().build();
  expect_bytes_error({b.begin(), b.end() - 8}, {"tensor 'a.weight'", "lies outside the file"});
  auto bad = b;
  patch<uint64_t>(bad, kTensorCountAt, uint64_t(1) << 60);
  expect_bytes_error(bad, {"tensor count 1152921504606846976 cannot fit"});
}

TEST(GgufReaderCorrupt, OverlappingTensorData) {
  // Two tensors at one offset, and one shifted by an alignment step into its neighbour:
  // both loaded as silently wrong weights.
  GgufWriter same = valid_writer();
  same.add_tensor("b.weight", GGML_F32, {64}, {}, 0);
  expect_open_error(same, {"tensors \"a.weight\" (bytes [0, 256)) and \"b.weight\" (bytes [0, 256)) overlap"});
  GgufWriter shifted = valid_writer();
  shifted.add_tensor("b.weight", GGML_F32, {64}, {}, 224);
  shifted.add_tensor("c.weight", GGML_F32, {64}, std::vector<std::byte>(256));  // data up to byte 512
  expect_open_error(shifted, {"\"a.weight\" (bytes [0, 256)) and \"b.weight\" (bytes [224, 480)) overlap"});
  GgufWriter apart = valid_writer();
  apart.add_tensor("b.weight", GGML_F32, {64}, std::vector<std::byte>(256));
  TempPath p("gguf-ok");
  apart.write(p.str());
  EXPECT_NO_THROW(GgufFile::open(p.str()));
}

TEST(GgufReaderCorrupt, UnsupportedArchitectureNamesTheKey) {
  GgufWriter w = valid_writer();
  w.set_string("general.architecture", "gpt9");
  TempPath p("gguf-arch");
  w.write(p.str());
  std::string path = p.str();
  expect_error([&] { load_gguf(path, {}); }, {path, "general.architecture", "unsupported architecture 'gpt9'"});
}

// Every truncation and many random byte flips of a real file must end in upg::Error or a
// clean parse, never a crash (run under ASan/UBSan).
TEST(GgufReaderCorrupt, TruncationsAndByteFlipsNeverCrash) {
  GgufFile ok = GgufFile::open(gguf_test::fixture("quant-types.gguf"));
  const auto& m = *ok.file();
  std::vector<std::byte> all(m.data(), m.data() + m.size());
  uint64_t data_end = 0;
  for (auto& t : ok.tensors()) data_end = std::max(data_end, ok.data_offset() + t.offset + t.nbytes);
  TempPath p("gguf-fuzz");
  // Cut points cover the whole header/metadata/info region densely, the data sparsely.
  for (size_t n = 0; n < data_end; n += n < ok.data_offset() ? 1 : 97) {
    write_bytes(p.str(), {all.begin(), all.begin() + n});
    EXPECT_THROW(GgufFile::open(p.str()), Error) << "cut at " << n;
  }
  std::mt19937 rng(42);
  int parsed = 0;
  for (int i = 0; i < 1500; ++i) {
    auto b = all;
    size_t at = rng() % ok.data_offset();
    b[at] = std::byte(rng() & 0xFF);
    write_bytes(p.str(), b);
    try {
      GgufFile g = GgufFile::open(p.str());
      ++parsed;
      for (auto& t : g.tensors()) ASSERT_TRUE(g.file()->contains(uint64_t(t.data - g.file()->data()), t.nbytes));
      load_gguf(p.str(), {});  // no llama.* keys: must fail cleanly
    } catch (const Error&) {
    }
  }
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace upg::io
