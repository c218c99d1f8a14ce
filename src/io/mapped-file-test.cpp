// MappedFile::from_bytes and the readers' in-memory entry points (used by the fuzz
// harnesses) read exactly what the same bytes read from a file give.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "io/gguf-reader.h"
#include "upg/io/gguf-writer.h"
#include "io/mapped-file.h"
#include "io/safetensors-reader.h"
#include "io/safetensors-test-util.h"
#include "upg/core/tensor.h"

namespace upg::io {
namespace {

using testing::raw_safetensors;

TEST(MappedFile, FromBytesHoldsACopy) {
  std::string bytes = "hello";
  auto f = MappedFile::from_bytes("mem", bytes.data(), bytes.size());
  bytes[0] = 'j';
  EXPECT_EQ(f->path(), "mem");
  ASSERT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), 5), "hello");
  EXPECT_TRUE(f->contains(0, 5));
  EXPECT_FALSE(f->contains(1, 5));
  EXPECT_EQ(MappedFile::from_bytes("empty", nullptr, 0)->size(), 0u);
}

TEST(MappedFile, SafetensorsFromBytes) {
  const std::string bytes =
      raw_safetensors(R"({"__metadata__":{"k":"v"},"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})", "abc");
  const SafetensorsFile st = read_safetensors(MappedFile::from_bytes("mem.safetensors", bytes.data(), bytes.size()));
  ASSERT_EQ(st.tensors.size(), 1u);
  EXPECT_EQ(st.tensors[0].name, "x");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(st.tensors[0].data), 3), "abc");
  ASSERT_EQ(st.metadata.size(), 1u);
  EXPECT_EQ(st.metadata[0].second, "v");
  const std::string bad = raw_safetensors("[]");
  testing::expect_error([&] { read_safetensors(MappedFile::from_bytes("mem.safetensors", bad.data(), bad.size())); },
                        {"mem.safetensors: header must be a JSON object"});
}

TEST(MappedFile, GgufFromBytes) {
  GgufWriter w;
  w.set_u32("general.alignment", 32);
  w.set_string("general.name", "mem");
  const std::vector<float> data = {1, 2, 3, 4};
  w.add_f32("t", {4}, data);
  const std::vector<std::byte> bytes = w.build();
  const GgufFile g = GgufFile::parse(MappedFile::from_bytes("mem.gguf", bytes.data(), bytes.size()));
  EXPECT_EQ(g.get_string("general.name"), "mem");
  ASSERT_NE(g.find_tensor("t"), nullptr);
  EXPECT_EQ(std::memcmp(g.find_tensor("t")->data, data.data(), 16), 0);
  testing::expect_error([&] { GgufFile::parse(MappedFile::from_bytes("mem.gguf", bytes.data(), 20)); },
                        {"mem.gguf"});
}

// Resident pages of the process (/proc/self/statm's second field).
long resident_pages() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident;
}

// Dropping a read mapping's pages gives the memory back, and a later read sees the same
// bytes again (from the file); the store releases only the ranges kept as droppable.
TEST(MappedFile, DropPagesGivesMemoryBackAndKeepsContents) {
  const size_t n = size_t(8) << 20, page = size_t(sysconf(_SC_PAGESIZE));
  std::vector<char> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = char(i * 2654435761u >> 24);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("upg-drop-pages-" + std::to_string(getpid()))).string();
  std::ofstream(path, std::ios::binary).write(want.data(), std::streamsize(n));
  auto f = MappedFile::open(path);
  std::filesystem::remove(path);  // the mapping keeps the file's pages reachable
  const char* data = reinterpret_cast<const char*>(f->data());
  ASSERT_EQ(std::memcmp(data, want.data(), n), 0);
  const long before = resident_pages();
  WeightStore store;
  store.keep_alive(f, f->data(), f->size(), [&](const std::byte* p, size_t len) { f->drop_pages(p, len); });
  store.release(f->data() + 100, n - 200);  // unaligned ends
  const long dropped = before - resident_pages();
  EXPECT_GE(dropped, long(n / page) * 3 / 4) << "resident pages before " << before;
  EXPECT_EQ(std::memcmp(data, want.data(), n), 0);

  // A store's own buffers and from_bytes copies are not mappings: nothing is dropped.
  std::byte* own = store.allocate(n);
  std::memcpy(own, want.data(), n);
  store.release(own, n);
  EXPECT_EQ(std::memcmp(own, want.data(), n), 0);
  auto copy = MappedFile::from_bytes("mem", want.data(), n);
  copy->drop_pages(copy->data(), n);
  EXPECT_EQ(std::memcmp(copy->data(), want.data(), n), 0);
}

}  // namespace
}  // namespace upg::io
