#include "compress/synth.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include "core/test-paths.h"
#include "io/gguf-reader.h"
#include "upg/core/file-text.h"
#include "upg/core/tensor.h"
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

// `upg synth --gguf`: llama.cpp's keys and names for the architecture, every tensor of
// synth_tensors under its GGUF name and shape, Q8_0 blocks within half a step of the
// synth_row values they quantize (plus the fp16 rounding of the step: 127 * 2^-11 of
// it), and a file UPG's GGUF loader runs.
void synth_gguf_and_load(const std::string& arch, const char* gguf_arch, uint32_t type) {
  SCOPED_TRACE(arch);
  const fs::path out = fs::temp_directory_path() / fmt::format("upg-synth-test-{}-{}.gguf", getpid(), arch);
  SynthOptions o;
  o.config_path = test::fixture("tiny/" + arch + "/config.json");
  o.output = out.string();
  o.matrix.threads = 2;
  o.seed = 9;
  o.quiet = true;
  synth_gguf(o, type);
  const io::GgufFile g = io::GgufFile::open(o.output);
  EXPECT_EQ(g.get_string("general.architecture"), gguf_arch);
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens").size(), 256u);
  const ModelConfig cfg = parse_hf_config(read_file_text(o.config_path, "config"), "config");
  for (const SynthTensor& t : synth_tensors(cfg)) {
    const io::GgufTensorInfo* gt = g.find_tensor(t.gguf);
    ASSERT_TRUE(gt) << t.gguf;
    EXPECT_EQ(gt->shape(), t.shape) << t.gguf;
    if (t.kind != SynthTensor::Linear && t.kind != SynthTensor::Embedding) continue;
    ASSERT_EQ(gt->ggml_type, type) << t.gguf;
    if (type != io::GGML_Q8_0) continue;
    const int64_t cols = t.shape.back();
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r : {int64_t(0), t.shape[0] - 1}) {
      synth_row(o.seed, t.name, r, o.std, row.data(), cols);
      const std::byte* blocks = gt->data + size_t(r) * size_t(cols / 32) * 34;
      for (int64_t c = 0; c < cols; ++c) {
        const std::byte* b = blocks + size_t(c / 32) * 34;
        uint16_t dh;
        std::memcpy(&dh, b, 2);
        const float d = fp16_to_fp32(dh), q = float(int8_t(b[2 + c % 32]));
        ASSERT_NEAR(d * q, row[size_t(c)], d * 0.57f + 1e-7f) << t.gguf << " row " << r << " col " << c;
      }
    }
  }
  auto model = Model::from_file(o.output);
  const auto logits = model->forward({72, 105});
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  fs::remove(out);
}

TEST(SynthGguf, LlamaQ8_0) { synth_gguf_and_load("llama", "llama", io::GGML_Q8_0); }
TEST(SynthGguf, Qwen2Q4_0HasBiases) { synth_gguf_and_load("qwen2", "qwen2", io::GGML_Q4_0); }
TEST(SynthGguf, Phi3FusedF16) { synth_gguf_and_load("phi3", "phi3", io::GGML_F16); }

// --dense-int8-embeddings: the embedding as qweight + scales within one step of its rows.
TEST(Synth, Int8Embeddings) {
  const fs::path out = fs::temp_directory_path() / fmt::format("upg-synth-test-{}-emb.upg", getpid());
  SynthOptions o;
  o.config_path = test::fixture("tiny/llama/config.json");
  o.output = out.string();
  o.matrix.threads = 2;
  o.int8_embeddings = true;
  o.quiet = true;
  synth_model(o);
  ModelSource src = io::load_upg(o.output, {});
  const std::string name = "model.embed_tokens.weight";
  ASSERT_TRUE(src.weights.contains(name + ".qweight"));
  const TensorView& q = src.weights.get(name + ".qweight");
  const TensorView& sc = src.weights.get(name + ".scales");
  ASSERT_EQ(q.dtype, DType::I8);
  const int64_t rows = q.shape[0], cols = q.shape[1];
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; r += 37) {
    synth_row(o.seed, name, r, o.std, row.data(), cols);
    const float s = sc.as<float>()[r];
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_NEAR(s * float(q.as<int8_t>()[r * cols + c]), row[size_t(c)], s * 0.51f);
  }
  auto model = Model::from_file(o.output);
  for (float x : model->forward({72, 105})) ASSERT_TRUE(std::isfinite(x));
  fs::remove(out);
}

TEST(SynthGguf, RejectsOtherTypes) {
  SynthOptions o;
  o.config_path = test::fixture("tiny/llama/config.json");
  o.output = (fs::temp_directory_path() / "upg-synth-never.gguf").string();
  EXPECT_THROW(synth_gguf(o, io::GGML_Q4_K), ParamError);
  EXPECT_FALSE(fs::exists(o.output));
}

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
