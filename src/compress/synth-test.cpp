#include "compress/synth.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include "core/test-paths.h"
#include "upg/io/upg-file.h"
#include "upg/core/error.h"
#include "upg/io/io.h"
#include "upg/model/model.h"

namespace upg::compress {
namespace {

namespace fs = std::filesystem;

TEST(Synth, RowsAreDeterministicAndNormal) {
  std::vector<float> a(20000), b(20000), c(20000);
  synth_row(7, "w", 3, 0.02f, a.data(), int64_t(a.size()));
  synth_row(7, "w", 3, 0.02f, b.data(), int64_t(b.size()));
  synth_row(7, "w", 4, 0.02f, c.data(), int64_t(c.size()));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double sum = 0, sq = 0;
  for (float x : a) sum += x, sq += double(x) * x;
  const double mean = sum / double(a.size()), sd = std::sqrt(sq / double(a.size()) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.001);
  EXPECT_NEAR(sd, 0.02, 0.001);
}

TEST(Synth, ByteTokenizerRoundTrips) {
  const TokenizerSpec spec = byte_tokenizer_spec(300);
  const TokenizerSpec parsed =
      parse_tokenizer_json(to_tokenizer_json(spec), to_tokenizer_config_json(spec), "synth tokenizer");
  Tokenizer tok(parsed);
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(tok.eos_id(), 256);
  const std::string text = "Hello, world! \xc3\xa9";
  const auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], int32_t(uint8_t(text[i])));
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_THROW(byte_tokenizer_spec(255), Error);
}

void synth_and_load(const std::string& arch, const char* pattern, const char* values) {
  SCOPED_TRACE(arch);
  const fs::path out = fs::temp_directory_path() / fmt::format("upg-synth-test-{}-{}.upg", getpid(), arch);
  SynthOptions o;
  o.config_path = test::fixture("tiny/" + arch + "/config.json");
  o.output = out.string();
  o.matrix.pattern = parse_pattern(pattern);
  o.matrix.values = parse_values(values);
  o.matrix.threads = 2;
  o.seed = 5;
  o.quiet = true;
  const CompressReport rep = synth_model(o);
  ModelSource src = io::load_upg(o.output, {});
  const ModelConfig cfg = parse_hf_config(io::read_upg_header(o.output).config_json, "config");
  const auto tensors = synth_tensors(cfg);
  EXPECT_EQ(rep.tensors.size(), tensors.size());
  for (const auto& t : tensors) {
    if (t.kind == SynthTensor::Linear) {
      ASSERT_TRUE(src.compressed.count(t.name)) << t.name;
      // The stored matrix is the pruned+quantized synth_row matrix, exactly.
      const auto& m = src.compressed.at(t.name);
      std::vector<float> w(size_t(t.shape[0] * t.shape[1]));
      for (int64_t r = 0; r < t.shape[0]; ++r) synth_row(o.seed, t.name, r, o.std, w.data() + r * t.shape[1], t.shape[1]);
      std::vector<float> ref;
      compress_matrix(w, t.shape[0], t.shape[1], {}, o.matrix, t.name, nullptr, &ref);
      EXPECT_EQ(format::decode_dense(m), ref) << t.name;
    } else {
      ASSERT_TRUE(src.weights.contains(t.name)) << t.name;
      EXPECT_EQ(src.weights.get(t.name).shape, t.shape);
    }
  }
  ASSERT_TRUE(src.tokenizer.has_value());
  auto model = Model::from_file(o.output);
  const auto logits = model->forward({72, 105});
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  fs::remove(out);
}

TEST(Synth, LlamaUnstructuredInt8) { synth_and_load("llama", "unstructured", "int8"); }
TEST(Synth, Qwen2TwoFourHasBiases) { synth_and_load("qwen2", "2:4", "int8"); }
TEST(Synth, Phi3FusedCodebook) { synth_and_load("phi3", "unstructured", "codebook:32"); }

TEST(Synth, RejectsNMWithPrime) {
  SynthOptions o;
  o.config_path = test::fixture("tiny/llama/config.json");
  o.output = (fs::temp_directory_path() / "upg-synth-never.upg").string();
  o.matrix.pattern = parse_pattern("2:4");
  o.matrix.values = parse_values("prime:127");
  EXPECT_THROW(synth_model(o), Error);
  EXPECT_FALSE(fs::exists(o.output));
}

}  // namespace
}  // namespace upg::compress
