#include "io/safetensors-writer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "io/atomic-file-test-util.h"
#include "io/safetensors-reader.h"
#include "io/safetensors-test-util.h"

namespace upg::io {
namespace {

using testing::expect_error;
using testing::has_temp;
using testing::TempDir;

constexpr DType kAll[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                          DType::I8,  DType::U8,  DType::U16, DType::U32,  DType::U64, DType::BOOL};

// Deterministic bytes per tensor; scripts/check-safetensors.py recomputes the same
// pattern to check that Python's safetensors reads what we wrote.
std::vector<std::byte> pattern(size_t index, size_t n) {
  std::vector<std::byte> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = std::byte((index * 31 + i * 7 + 1) & 0xFF);
  return b;
}

// One tensor per dtype with odd sizes, so a writer that did not order by alignment
// would leave later tensors misaligned.
std::vector<SafetensorsEntry> all_dtype_entries() {
  std::vector<SafetensorsEntry> e;
  for (DType t : kAll) e.push_back({std::string("t_") + dtype_name(t), t, {3, 5}});
  e.push_back({"scalar_f32", DType::F32, {}});
  e.push_back({"empty_bf16", DType::BF16, {0, 7}});
  return e;
}

void write_all_dtypes(const std::string& path) {
  auto entries = all_dtype_entries();
  SafetensorsWriter w(path, entries, {{"format", "pt"}, {"upg.test", "all-dtypes"}});
  // Reverse order and in two pieces each: the writer places bytes by header offsets.
  for (size_t i = entries.size(); i-- > 0;) {
    auto b = pattern(i, dtype_bytes(entries[i].dtype, TensorView{"", entries[i].dtype, entries[i].shape}.numel()));
    size_t half = b.size() / 2;
    w.write(entries[i].name, std::span(b).first(half));
    w.write(entries[i].name, std::span(b).subspan(half));
  }
  w.finish();
}

TEST(SafetensorsWriter, RoundTripAllDtypes) {
  TempDir dir;
  std::string path = dir.file("all.safetensors");
  write_all_dtypes(path);
  EXPECT_EQ(testing::dir_entries(dir.path()), std::vector<std::string>{"all.safetensors"});

  SafetensorsFile f = read_safetensors(path);
  EXPECT_EQ(f.data_start % 8, 0u);  // header padded to 8 bytes
  EXPECT_EQ(f.metadata,
            (std::vector<std::pair<std::string, std::string>>{{"format", "pt"}, {"upg.test", "all-dtypes"}}));
  auto entries = all_dtype_entries();
  ASSERT_EQ(f.tensors.size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const TensorView* got = nullptr;
    for (const auto& t : f.tensors)
      if (t.name == entries[i].name) got = &t;
    ASSERT_NE(got, nullptr) << entries[i].name;
    EXPECT_EQ(got->dtype, entries[i].dtype);
    EXPECT_EQ(got->shape, entries[i].shape);
    auto want = pattern(i, got->nbytes);
    if (got->nbytes > 0) {
      EXPECT_EQ(std::memcmp(got->data, want.data(), want.size()), 0) << got->name;
    }
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got->data) % uintptr_t(dtype_block_bytes(got->dtype)), 0u) << got->name;
  }
  // Data is contiguous and exactly fills the file, as the safetensors crate requires.
  uint64_t total = 0;
  for (const auto& t : f.tensors) total += t.nbytes;
  EXPECT_EQ(f.data_start + total, f.file->size());

  // Manual interop check: UPG_SAFETENSORS_OUT=/tmp/x.safetensors test-io
  //   --gtest_filter=SafetensorsWriter.* && python3 scripts/check-safetensors.py /tmp/x.safetensors
  if (const char* out = std::getenv("UPG_SAFETENSORS_OUT")) write_all_dtypes(out);
}

TEST(SafetensorsWriter, WriteSafetensorsFromViews) {
  TempDir dir;
  std::string path = dir.file("v.safetensors");
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {fp32_to_bf16(0.5f), fp32_to_bf16(-3.0f)};
  std::vector<TensorView> views = {
      {"b", DType::BF16, {2}, reinterpret_cast<const std::byte*>(b.data()), 4},
      {"a", DType::F32, {2, 3}, reinterpret_cast<const std::byte*>(a.data()), 24},
  };
  write_safetensors(path, views);
  SafetensorsFile f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 2u);
  // F32 first (larger elements), then BF16.
  EXPECT_EQ(f.tensors[0].name, "a");
  EXPECT_EQ(f.tensors[0].as<float>()[5], 6.0f);
  EXPECT_EQ(bf16_to_fp32(f.tensors[1].as<uint16_t>()[1]), -3.0f);
  EXPECT_TRUE(f.metadata.empty());

  views[1].nbytes = 20;
  expect_error([&] { write_safetensors(dir.file("bad.safetensors"), views); }, {"tensor 'a'", "20 bytes"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.safetensors")));
  EXPECT_FALSE(has_temp(dir.path()));
}

TEST(SafetensorsWriter, UnfinishedWriterLeavesNoFile) {
  TempDir dir;
  std::string path = dir.file("out.safetensors");
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::I8, {3}}});
    EXPECT_TRUE(has_temp(dir.path()));
    std::vector<std::byte> bytes(8);
    w.write("a", bytes);
    // b never written, finish() never called: an interrupted run.
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, FinishRequiresEveryTensorComplete) {
  TempDir dir;
  std::string path = dir.file("out.safetensors");
  SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::I8, {3}}});
  std::vector<std::byte> bytes(8);
  w.write("a", bytes);
  w.write("b", std::span(bytes).first(2));
  expect_error([&] { w.finish(); }, {path, "tensor 'b' has 2 of its 3 bytes"});
  EXPECT_FALSE(std::filesystem::exists(path));
  w.write("b", std::span(bytes).first(1));
  w.finish();
  EXPECT_EQ(testing::dir_entries(dir.path()), std::vector<std::string>{"out.safetensors"});
  EXPECT_EQ(read_safetensors(path).tensors.size(), 2u);
}

TEST(SafetensorsWriter, TwoWritersToOneTargetDoNotClash) {
  // Two runs writing one path at once each fill their own temp: the target is always
  // one writer's complete file, never a mix of both.
  TempDir dir;
  std::string path = dir.file("out.safetensors");
  const std::vector<std::byte> a_bytes(8, std::byte{0xAA}), b_bytes(12, std::byte{0xBB});
  SafetensorsWriter a(path, {{"a", DType::F32, {2}}});
  SafetensorsWriter b(path, {{"b", DType::F32, {3}}});
  a.write("a", a_bytes);
  b.write("b", b_bytes);
  a.finish();
  SafetensorsFile fa = read_safetensors(path);
  ASSERT_EQ(fa.tensors.size(), 1u);
  EXPECT_EQ(fa.tensors[0].name, "a");
  EXPECT_EQ(std::memcmp(fa.tensors[0].data, a_bytes.data(), 8), 0);
  b.finish();
  SafetensorsFile fb = read_safetensors(path);
  ASSERT_EQ(fb.tensors.size(), 1u);
  EXPECT_EQ(fb.tensors[0].name, "b");
  EXPECT_EQ(std::memcmp(fb.tensors[0].data, b_bytes.data(), 12), 0);
  EXPECT_EQ(testing::dir_entries(dir.path()), std::vector<std::string>{"out.safetensors"});
}

TEST(SafetensorsWriter, RejectsBadWrites) {
  TempDir dir;
  std::string path = dir.file("out.safetensors");
  SafetensorsWriter w(path, {{"a", DType::F32, {2}}});
  std::vector<std::byte> bytes(12);
  expect_error([&] { w.write("zz", bytes); }, {path, "tensor 'zz' is not in the header"});
  expect_error([&] { w.write("a", bytes); }, {path, "tensor 'a'", "exceed its size 8"});
}

TEST(SafetensorsWriter, RejectsBadEntries) {
  TempDir dir;
  std::string path = dir.file("out.safetensors");
  using E = std::vector<SafetensorsEntry>;
  expect_error([&] { SafetensorsWriter(path, E{{"a", DType::F32, {1}}, {"a", DType::F16, {1}}}); },
               {"tensor 'a'", "twice"});
  expect_error([&] { SafetensorsWriter(path, E{{"q", DType::Q4_0, {32}}}); }, {"tensor 'q'", "Q4_0"});
  expect_error([&] { SafetensorsWriter(path, E{{"n", DType::F32, {-1}}}); }, {"tensor 'n'", "invalid shape"});
  expect_error([&] { SafetensorsWriter(path, E{{"__metadata__", DType::F32, {1}}}); }, {"reserved"});
  expect_error([&] { SafetensorsWriter(path, E{{"", DType::F32, {1}}}); }, {"empty name"});
  const std::string missing = dir.file("no/such/dir/x.safetensors");
  expect_error([&] { SafetensorsWriter(missing, E{}); }, {missing, "No such file or directory"});
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, EmptyFileIsValid) {
  TempDir dir;
  std::string path = dir.file("empty.safetensors");
  SafetensorsWriter(path, {}).finish();
  SafetensorsFile f = read_safetensors(path);
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_EQ(f.file->size(), f.data_start);
}

}  // namespace
}  // namespace upg::io
