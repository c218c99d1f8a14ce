// MappedFile::from_bytes and the readers' in-memory entry points (used by the fuzz
// harnesses) read exactly what the same bytes read from a file give.
#include <gtest/gtest.h>

#include <cstring>

#include "io/gguf-reader.h"
#include "io/gguf-writer.h"
#include "io/mapped-file.h"
#include "io/safetensors-reader.h"
#include "io/safetensors-test-util.h"

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

}  // namespace
}  // namespace upg::io
