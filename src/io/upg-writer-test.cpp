// UpgWriter -> load_upg round trips for every layout and encoding, the container's
// safetensors validity (alignment, no gaps, header padding) and temp-file hygiene:
// unique temps, concurrent writers, temps of killed runs, unwritable and failing paths.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "io/atomic-file-test-util.h"
#include "io/safetensors-test-util.h"
#include "io/upg-test-util.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg::io {
namespace {

using testing::bytes_of;
using testing::expect_error;
using testing::TempDir;

template <class T>
void expect_same(std::span<const T> got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  if (!want.empty()) {
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(T)), 0) << what;
  }
}

struct Dense {
  std::vector<float> norm = {1.0f, 0.5f, -2.0f, 3.25f, 0, 1, 2, 3};
  std::vector<uint16_t> bf16 = {0x3f80, 0xbf80, 0x4000, 0x0000, 0x3f00, 0x4040};
  std::vector<int8_t> qweight = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12};
  std::vector<float> qscales = {0.5f, 0.25f, 0.125f};
};

// Writes dense tensors of three element sizes interleaved with every compressed kind.
void write_sample(const std::string& path, const std::vector<testing::NamedMatrix>& kinds, const Dense& d) {
  UpgWriter w(path, testing::tiny_header());
  w.add_dense("model.norm.weight", DType::F32, {8}, bytes_of(d.norm));
  for (size_t i = 0; i < kinds.size(); ++i) {
    w.add_compressed(kinds[i].name, kinds[i].data);
    if (i == 1) w.add_dense("model.layers.0.input_layernorm.weight", DType::BF16, {2, 3}, bytes_of(d.bf16));
  }
  w.add_dense("model.embed_tokens.qweight", DType::I8, {3, 4}, bytes_of(d.qweight));
  w.add_dense("model.embed_tokens.scales", DType::F32, {3}, bytes_of(d.qscales));
  const uint64_t before = w.bytes_written();
  w.finish();
  EXPECT_GT(w.bytes_written(), before);
  EXPECT_EQ(w.bytes_written(), std::filesystem::file_size(path));
}

TEST(UpgFile, RoundTripEveryLayoutAndEncoding) {
  TempDir dir;
  const std::string path = dir.file("model.upg");
  const auto kinds = testing::every_kind();
  const Dense d;
  write_sample(path, kinds, d);

  ModelSource src = load_model_source(path);
  EXPECT_EQ(src.format, "upg");
  EXPECT_EQ(src.config.architecture, "LlamaForCausalLM");
  EXPECT_EQ(src.config.hidden_size, 8);
  ASSERT_TRUE(src.tokenizer.has_value());
  EXPECT_EQ(src.tokenizer->vocab.size(), 3u);
  EXPECT_EQ(src.tokenizer->chat_template, "{{ x }}");
  EXPECT_EQ(src.tokenizer->eos_id, 1);

  ASSERT_EQ(src.compressed.size(), kinds.size());
  for (const auto& k : kinds) {
    SCOPED_TRACE(k.name);
    auto it = src.compressed.find(k.name);
    ASSERT_NE(it, src.compressed.end());
    const format::CompressedMatrix& m = it->second;
    const format::CompressedData& want = k.data;
    EXPECT_EQ(m.layout, want.layout);
    EXPECT_EQ(m.encoding, want.encoding);
    EXPECT_EQ(m.rows, want.rows);
    EXPECT_EQ(m.cols, want.cols);
    expect_same(m.scales, want.scales, "scales");
    if (m.layout == format::Layout::MdCsr) {
      expect_same(m.mdcsr.row_pointers, want.row_pointers, "row_pointers");
      expect_same(m.mdcsr.delta_indices, want.delta_indices, "delta_indices");
      expect_same(m.mdcsr.values, want.values, "values");
      expect_same(m.mdcsr.prime_indices, want.prime_indices, "prime_indices");
      expect_same(m.mdcsr.codebook, want.codebook, "codebook");
    } else {
      EXPECT_EQ(m.nm.n, want.n);
      EXPECT_EQ(m.nm.m, want.m);
      expect_same(m.nm.values, want.values, "nm_values");
      expect_same(m.nm.positions, want.positions, "nm_positions");
    }
    EXPECT_NO_THROW(format::validate(m, k.name));
    EXPECT_EQ(format::decode_dense(m), format::decode_dense(want.view()));
    // Parts are not dense weights; the weight's own name is not one either.
    EXPECT_FALSE(src.weights.contains(k.name));
    EXPECT_FALSE(src.weights.contains(k.name + ".scales"));
  }
  // At least one MdCSR matrix needed padding entries (a gap over 255).
  EXPECT_NE(std::count(kinds[0].data.delta_indices.begin(), kinds[0].data.delta_indices.end(), uint8_t(255)), 0);

  ASSERT_EQ(src.weights.all().size(), 4u);
  const TensorView& norm = src.weights.get("model.norm.weight");
  EXPECT_EQ(norm.dtype, DType::F32);
  EXPECT_EQ(std::memcmp(norm.data, d.norm.data(), norm.nbytes), 0);
  const TensorView& ln = src.weights.get("model.layers.0.input_layernorm.weight");
  EXPECT_EQ(ln.dtype, DType::BF16);
  EXPECT_EQ(ln.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(ln.data, d.bf16.data(), ln.nbytes), 0);
  EXPECT_EQ(src.weights.get("model.embed_tokens.qweight").dtype, DType::I8);
  EXPECT_EQ(src.weights.get("model.embed_tokens.scales").dtype, DType::F32);

  auto info = [&](const std::string& key) {
    for (auto& [k, v] : src.info)
      if (k == key) return v;
    return std::string("(absent)");
  };
  EXPECT_EQ(info("upg.version"), "2");
  EXPECT_EQ(info("compressed.mdcsr"), "3");
  EXPECT_EQ(info("compressed.nm"), "2");
  EXPECT_NE(info("compression").find("pattern=mixed"), std::string::npos) << info("compression");
}

TEST(UpgFile, IsValidSafetensorsWithAlignedContiguousParts) {
  TempDir dir;
  const std::string path = dir.file("model.upg");
  write_sample(path, testing::every_kind(), Dense{});

  SafetensorsFile st = read_safetensors(path);
  EXPECT_EQ(st.data_start % 8, 0u);
  const std::byte* data = st.file->data() + st.data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& t : st.tensors) {
    const uint64_t begin = uint64_t(t.data - data);
    EXPECT_EQ(begin % uint64_t(dtype_block_bytes(t.dtype)), 0u) << t.name << " misaligned";
    ranges.emplace_back(begin, begin + t.nbytes);
  }
  // safetensors forbids gaps: the ranges tile the data section exactly.
  std::sort(ranges.begin(), ranges.end());
  uint64_t end = 0;
  for (auto [b, e] : ranges) {
    EXPECT_EQ(b, end);
    end = e;
  }
  EXPECT_EQ(end, st.file->size() - st.data_start);

  auto meta = [&](const std::string& key) {
    for (auto& [k, v] : st.metadata)
      if (k == key) return v;
    return std::string();
  };
  EXPECT_EQ(meta("upg.version"), "2");
  EXPECT_EQ(nlohmann::json::parse(meta("upg.config"))["hidden_size"], 8);
  const auto tensors = nlohmann::json::parse(meta("upg.tensors"));
  const auto& q = tensors.at("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.at("layout"), "mdcsr");
  EXPECT_EQ(q.at("encoding"), "int8");
  EXPECT_EQ(q.at("shape"), nlohmann::json({5, 600}));
  const auto& up = tensors.at("model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(up.at("layout"), "nm");
  EXPECT_EQ(up.at("n"), 4);
  EXPECT_EQ(up.at("m"), 8);
  EXPECT_EQ(up.at("entries"), 3 * 12);
  EXPECT_EQ(tensors.at("model.layers.0.self_attn.v_proj.weight").at("codebook_size"), 16);

  // The tokenizer travels as U8 tensors.
  auto tok = std::find_if(st.tensors.begin(), st.tensors.end(), [](auto& t) { return t.name == "upg.tokenizer_json"; });
  ASSERT_NE(tok, st.tensors.end());
  EXPECT_EQ(tok->dtype, DType::U8);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(tok->data), tok->nbytes), testing::kTinyTokenizer);

  // A .safetensors name is recognised as UPG through its metadata.
  const std::string renamed = dir.file("model.safetensors");
  std::filesystem::copy_file(path, renamed);
  EXPECT_TRUE(is_upg_file(renamed));
  EXPECT_EQ(load_model_source(renamed).format, "upg");

  const UpgHeader h = read_upg_header(path);
  EXPECT_EQ(h.config_json, testing::kTinyConfig);
  EXPECT_EQ(h.tokenizer_config_json, testing::kTinyTokenizerConfig);
}

TEST(UpgFile, UnfinishedWriterLeavesNothing) {
  TempDir dir;
  const auto kinds = testing::every_kind();
  {
    UpgWriter w(dir.file("model.upg"), testing::tiny_header());
    w.add_compressed(kinds[0].name, kinds[0].data);
    w.add_dense("x", DType::F32, {1}, bytes_of(std::vector<float>{1.0f}));
  }
  {
    UpgWriter w(dir.file("model.upg"), testing::tiny_header());
    w.add_compressed(kinds[3].name, kinds[3].data);
    EXPECT_THROW(w.add_compressed(kinds[3].name, kinds[3].data), Error);  // same name twice
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(UpgFile, WriterRejectsBadInput) {
  TempDir dir;
  const std::string path = dir.file("model.upg");
  UpgHeader bad = testing::tiny_header();
  bad.config_json = "{not json";
  expect_error([&] { UpgWriter w(path, bad); }, {path, "upg.config"});

  UpgWriter w(path, testing::tiny_header());
  const std::vector<float> two = {1, 2};
  expect_error([&] { w.add_dense("t", DType::F32, {3}, bytes_of(two)); }, {path, "'t'", "needs 12"});
  expect_error([&] { w.add_dense("q", DType::Q4_0, {32}, bytes_of(two)); }, {path, "'q'", "Q4_0"});
  expect_error([&] { w.add_dense("__metadata__", DType::F32, {2}, bytes_of(two)); }, {path, "reserved"});
  expect_error([&] { w.add_dense("upg.tokenizer_json", DType::F32, {2}, bytes_of(two)); }, {path, "used twice"});

  auto kinds = testing::every_kind();
  kinds[0].data.row_pointers[1] = kinds[0].data.row_pointers[2] + 1;  // decreasing
  expect_error([&] { w.add_compressed(kinds[0].name, kinds[0].data); }, {path, kinds[0].name, "decreases"});
  // A compressed weight may not share its name (or a part's) with a dense tensor.
  w.add_dense(kinds[1].name, DType::F32, {2}, bytes_of(two));
  expect_error([&] { w.add_compressed(kinds[1].name, kinds[1].data); }, {path, kinds[1].name, "used twice"});
  w.finish();
  expect_error([&] { w.add_dense("late", DType::F32, {2}, bytes_of(two)); }, {path, "after finish"});
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(testing::dir_entries(dir.path()), std::vector<std::string>{"model.upg"});
}

TEST(UpgFile, WriterNeverUsesAFixedTempName) {
  // "<path>.tmp" may be another run's file, or anything else: it is never opened.
  TempDir dir;
  const std::string path = dir.file("model.upg");
  testing::write_file(path + ".tmp", "not ours");
  write_sample(path, testing::every_kind(), Dense{});
  EXPECT_EQ(testing::read_file(path + ".tmp"), "not ours");
  EXPECT_EQ(load_model_source(path).format, "upg");
}

// Four processes write one target at once, each a different 4 MB file: all succeed, the
// target is one of them complete, no temp is left.
TEST(UpgFile, ConcurrentWritersToOneTargetDoNotClash) {
  TempDir dir;
  const std::string path = dir.file("model.upg");
  constexpr int kWriters = 4;
  constexpr int64_t kFloats = 1 << 20;
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < kWriters; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(go[1]);
      int code = 0;
      try {
        UpgWriter w(path, testing::tiny_header());
        const std::vector<float> x(size_t(kFloats), float(i + 1));
        w.add_dense("x", DType::F32, {kFloats}, bytes_of(x));
        char c;
        (void)!::read(go[0], &c, 1);  // all start finish() together
        w.finish();
      } catch (...) {  // counted as a failure; a child must never return into the test runner
        code = 1;
      }
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  ::close(go[0]);
  ASSERT_EQ(::write(go[1], "gggg", kWriters), kWriters);
  ::close(go[1]);
  int succeeded = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "writer crashed";
    succeeded += WEXITSTATUS(status) == 0;
  }
  EXPECT_EQ(succeeded, kWriters);  // each has its own temp, so every rename succeeds
  ModelSource src = load_model_source(path);
  const TensorView& x = src.weights.get("x");
  ASSERT_EQ(x.numel(), kFloats);
  const float first = x.as<float>()[0];
  EXPECT_TRUE(first >= 1.0f && first <= float(kWriters)) << first;
  for (int64_t k = 0; k < kFloats; ++k) ASSERT_EQ(x.as<float>()[k], first) << k;
  EXPECT_EQ(testing::dir_entries(dir.path()), std::vector<std::string>{"model.upg"});
}

TEST(UpgFile, WriterRemovesTheTempOfAKilledRun) {
  TempDir dir;
  const std::string path = dir.file("model.upg");
  const std::string stale = testing::temp_name(path, testing::dead_pid());
  testing::write_file(stale, "the header and half the tensors of an interrupted run");
  ::testing::internal::CaptureStderr();
  write_sample(path, testing::every_kind(), Dense{});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(stale), std::string::npos) << err;
  EXPECT_EQ(testing::dir_entries(dir.path()), std::vector<std::string>{"model.upg"});
}

TEST(UpgFile, UnwritablePathFailsAtConstruction) {
  // Compression takes minutes before the first tensor arrives: the path is checked
  // first, even when no tensor (here not even a tokenizer) is written at construction.
  TempDir dir;
  const std::string path = dir.file("missing/model.upg");
  UpgHeader h = testing::tiny_header();
  h.tokenizer_json.clear();
  h.tokenizer_config_json.clear();
  expect_error([&] { UpgWriter w(path, h); }, {path, "cannot create: " + dir.file("missing") + ": No such file"});
}

TEST(UpgFile, WriteFailingMidWayLeavesNoTemp) {
  // finish() hits the file size limit while copying the tensors in: each spill is under
  // the limit, the whole file is not. In a child, since the limit is per process.
  TempDir dir;
  const std::string path = dir.file("model.upg");
  const int code = testing::exit_code_past_size_limit(16384, path, [&] {
    UpgWriter w(path, testing::tiny_header());
    w.add_dense("a", DType::F32, {3000}, bytes_of(std::vector<float>(3000, 1.0f)));
    w.add_dense("b", DType::U8, {12000}, bytes_of(std::vector<uint8_t>(12000, 2)));
    w.finish();
  });
  EXPECT_EQ(code, 0) << "2: message lacks the path or the reason, 3: no error";
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << testing::dir_entries(dir.path()).size();
}

}  // namespace
}  // namespace upg::io
