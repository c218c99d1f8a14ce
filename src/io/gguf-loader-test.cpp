#include "io/gguf-loader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numbers>

#include "io/gguf-dequant.h"
#include "io/gguf-names.h"
#include "io/gguf-reader.h"
#include "io/gguf-test-util.h"
#include "upg/io/gguf-writer.h"

namespace upg::io {
namespace {

using gguf_test::expect_error;
using gguf_test::TempPath;

constexpr int kHidden = 32, kHeads = 4, kKvHeads = 2, kHeadDim = 8, kFfn = 64, kVocab = 6;

std::string info_value(const ModelSource& s, const std::string& key) {
  for (auto& [k, v] : s.info)
    if (k == key) return v;
  return "<missing>";
}

std::vector<float> iota_f32(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(i) * scale;
  return v;
}

// One Q8_0 block per row (cols == 32) with d = 1 and qs[c] = row - c, so a dequantized
// row tells which source row it came from.
std::vector<std::byte> q8_rows_tagged(int rows) {
  std::vector<std::byte> b(size_t(rows) * 34);
  for (int r = 0; r < rows; ++r) {
    std::byte* blk = b.data() + size_t(r) * 34;
    blk[0] = std::byte(0x00);
    blk[1] = std::byte(0x3C);  // fp16 1.0
    for (int c = 0; c < 32; ++c) blk[2 + c] = std::byte(uint8_t(int8_t(r - c)));
  }
  return b;
}

// A one-layer model of architecture `arch` in GGUF layout. Q (F32) and K (Q8_0) rows are
// stored permuted the way llama.cpp's converter does for llama.
GgufWriter tiny_model(const std::string& arch, bool tied = false,
                      const std::vector<std::byte>& k_blocks = q8_rows_tagged(kKvHeads * kHeadDim)) {
  GgufWriter w;
  w.set_string("general.architecture", arch);
  w.set_string("general.name", "tiny");
  w.set_u32("general.file_type", 7);
  w.set_u32(arch + ".context_length", 256);
  w.set_u32(arch + ".embedding_length", kHidden);
  w.set_u32(arch + ".block_count", 1);
  w.set_u32(arch + ".feed_forward_length", kFfn);
  w.set_u32(arch + ".attention.head_count", kHeads);
  w.set_u32(arch + ".attention.head_count_kv", kKvHeads);
  w.set_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-6f);
  w.set_f32(arch + ".rope.freq_base", 500000.0f);
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "llama-bpe");
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a", "b", "ab", "<tool>"});
  w.set_i32_array("tokenizer.ggml.token_type", {3, 3, 1, 1, 1, 4});
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  w.set_u32("tokenizer.ggml.bos_token_id", 0);
  w.set_u32("tokenizer.ggml.eos_token_id", 1);
  w.set_string("tokenizer.chat_template", "{{ x }}");

  const bool permute = arch == "llama";
  std::vector<float> q_hf = iota_f32(size_t(kHidden * kHidden), 0.5f), q(q_hf.size());
  auto qmap = permute ? qk_permute_rows(kHidden, kHeads) : std::vector<int64_t>{};
  for (int r = 0; r < kHidden; ++r)
    for (int c = 0; c < kHidden; ++c)
      q[size_t(r * kHidden + c)] = q_hf[size_t((permute ? qmap[size_t(r)] : r) * kHidden + c)];
  w.add_f32("token_embd.weight", {uint64_t(kHidden), uint64_t(kVocab)}, iota_f32(size_t(kVocab * kHidden), 1));
  w.add_f32("blk.0.attn_norm.weight", {uint64_t(kHidden)}, iota_f32(kHidden, 1));
  w.add_f32("blk.0.attn_q.weight", {uint64_t(kHidden), uint64_t(kHidden)}, q);
  // K rows (kKvHeads * kHeadDim = 16) tagged by their GGUF row index.
  w.add_tensor("blk.0.attn_k.weight", GGML_Q8_0, {uint64_t(kHidden), uint64_t(kKvHeads * kHeadDim)}, k_blocks);
  w.add_f32("blk.0.attn_v.weight", {uint64_t(kHidden), uint64_t(kKvHeads * kHeadDim)}, iota_f32(16 * 32, 1));
  w.add_f32("blk.0.attn_output.weight", {uint64_t(kHidden), uint64_t(kHidden)}, iota_f32(32 * 32, 1));
  w.add_f32("blk.0.ffn_norm.weight", {uint64_t(kHidden)}, iota_f32(kHidden, 1));
  w.add_f32("blk.0.ffn_gate.weight", {uint64_t(kHidden), uint64_t(kFfn)}, iota_f32(64 * 32, 1));
  w.add_f32("blk.0.ffn_up.weight", {uint64_t(kHidden), uint64_t(kFfn)}, iota_f32(64 * 32, 1));
  w.add_f32("blk.0.ffn_down.weight", {uint64_t(kFfn), uint64_t(kHidden)}, iota_f32(64 * 32, 1));
  w.add_f32("output_norm.weight", {uint64_t(kHidden)}, iota_f32(kHidden, 1));
  if (!tied) w.add_f32("output.weight", {uint64_t(kHidden), uint64_t(kVocab)}, iota_f32(size_t(kVocab * kHidden), 2));
  return w;
}

// These tests check exact values, so quantized tensors are dequantized to F32 unless a
// test asks otherwise (the library default is F16).
LoadOptions f32() {
  LoadOptions o;
  o.dequant_to = DType::F32;
  return o;
}

ModelSource load(const GgufWriter& w, LoadOptions o = f32()) {
  TempPath p("gguf-tiny");
  w.write(p.str());
  return load_gguf(p.str(), o);  // the mapping stays alive after the file is unlinked
}

TEST(GgufLoader, TinyLlamaConfigTokenizerAndNames) {
  ModelSource s = load(tiny_model("llama"));
  EXPECT_EQ(s.format, "gguf");
  const ModelConfig& c = s.config;
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, kHidden);
  EXPECT_EQ(c.num_layers, 1);
  EXPECT_EQ(c.num_heads, kHeads);
  EXPECT_EQ(c.num_kv_heads, kKvHeads);
  EXPECT_EQ(c.head_dim, kHeadDim);
  EXPECT_EQ(c.intermediate_size, kFfn);
  EXPECT_EQ(c.vocab_size, kVocab);
  EXPECT_EQ(c.max_position_embeddings, 256);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{1}));
  EXPECT_EQ(c.rope_scaling.type, "none");

  ASSERT_TRUE(s.tokenizer.has_value());
  const TokenizerSpec& t = *s.tokenizer;
  EXPECT_EQ(t.vocab.size(), 6u);
  EXPECT_EQ(t.merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(t.pre_tokenizer, "llama-bpe");
  EXPECT_TRUE(t.add_bos);  // llama.cpp's default for llama-bpe without the key
  EXPECT_EQ(t.chat_template, "{{ x }}");
  ASSERT_EQ(t.added_tokens.size(), 3u);
  EXPECT_EQ(t.added_tokens[0].content, "<s>");
  EXPECT_TRUE(t.added_tokens[0].special);
  EXPECT_EQ(t.added_tokens[2].id, 5);
  EXPECT_EQ(t.added_tokens[2].content, "<tool>");
  EXPECT_FALSE(t.added_tokens[2].special);

  EXPECT_EQ(s.weights.all().size(), 12u);
  const TensorView& e = s.weights.get("model.embed_tokens.weight");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{kVocab, kHidden}));
  EXPECT_EQ(e.dtype, DType::F32);
  EXPECT_EQ(s.weights.get("lm_head.weight").shape, (std::vector<int64_t>{kVocab, kHidden}));
  EXPECT_TRUE(s.weights.contains("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_EQ(info_value(s, "general.name"), "tiny");
  EXPECT_EQ(info_value(s, "file.type"), "MOSTLY_Q8_0 (7)");
  EXPECT_EQ(info_value(s, "tensor types"), "F32: 11, Q8_0: 1");
}

LoadOptions f32_hf_order() {
  LoadOptions o = f32();
  o.keep_gguf_qk_rows = false;
  return o;
}

TEST(GgufLoader, LlamaQkRowsAreUnpermuted) {
  ModelSource s = load(tiny_model("llama"), f32_hf_order());
  EXPECT_FALSE(s.config.rope_interleaved);
  const TensorView& q = s.weights.get("model.layers.0.self_attn.q_proj.weight");
  ASSERT_EQ(q.dtype, DType::F32);
  std::vector<float> want = iota_f32(size_t(kHidden * kHidden), 0.5f);
  EXPECT_EQ(std::vector<float>(q.as<float>(), q.as<float>() + q.numel()), want);

  const TensorView& k = s.weights.get("model.layers.0.self_attn.k_proj.weight");
  ASSERT_EQ(k.dtype, DType::F32);
  ASSERT_EQ(k.shape, (std::vector<int64_t>{16, 32}));
  // HF row r comes from GGUF row (h*hd + 2*i + half) for r = h*hd + half*hd/2 + i.
  for (int r = 0; r < 16; ++r) {
    int h = r / kHeadDim, half = (r % kHeadDim) / (kHeadDim / 2), i = r % (kHeadDim / 2);
    int src = h * kHeadDim + 2 * i + half;
    EXPECT_EQ(k.as<float>()[r * 32 + 3], float(int8_t(src - 3))) << "row " << r;
  }
}

// By default the rows stay as llama.cpp stored them and the config says RoPE pairs
// adjacent dims.
TEST(GgufLoader, LlamaQkRowsStayAsStoredByDefault) {
  ModelSource s = load(tiny_model("llama"));
  EXPECT_TRUE(s.config.rope_interleaved);
  const TensorView& k = s.weights.get("model.layers.0.self_attn.k_proj.weight");
  ASSERT_EQ(k.dtype, DType::F32);
  for (int r = 0; r < 16; ++r) EXPECT_EQ(k.as<float>()[r * 32 + 3], float(int8_t(r - 3))) << "row " << r;
}

TEST(GgufLoader, Qwen2IsNotPermutedAndHasBias) {
  ModelSource s = load(tiny_model("qwen2"));
  EXPECT_EQ(s.config.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(s.config.attention_bias);
  const TensorView& k = s.weights.get("model.layers.0.self_attn.k_proj.weight");
  for (int r = 0; r < 16; ++r) EXPECT_EQ(k.as<float>()[r * 32], float(r));
}

TEST(GgufLoader, DequantToHalfTypesAndTiedEmbeddings) {
  for (DType out : {DType::F16, DType::BF16}) {
    ModelSource s = load(tiny_model("llama", true), {out});
    EXPECT_TRUE(s.config.tie_word_embeddings);
    EXPECT_FALSE(s.weights.contains("lm_head.weight"));
    const TensorView& k = s.weights.get("model.layers.0.self_attn.k_proj.weight");
    EXPECT_EQ(k.dtype, out);
    EXPECT_EQ(k.nbytes, 16u * 32u * 2u);
    // Plain tensors keep their type.
    EXPECT_EQ(s.weights.get("model.norm.weight").dtype, DType::F32);
  }
  expect_error([] { load(tiny_model("llama"), {DType::Q4_0}); }, {"cannot dequantize to Q4_0"});
}

TEST(GgufLoader, RopeScalingFromMetadataAndTensors) {
  GgufWriter lin = tiny_model("llama");
  lin.set_string("llama.rope.scaling.type", "linear");
  lin.set_f32("llama.rope.scaling.factor", 4.0f);
  ModelSource s = load(lin);
  EXPECT_EQ(s.config.rope_scaling.type, "linear");
  EXPECT_FLOAT_EQ(s.config.rope_scaling.factor, 4.0f);

  GgufWriter bad = tiny_model("llama");
  bad.set_string("llama.rope.scaling.type", "wavy");
  expect_error([&] { load(bad); }, {"llama.rope.scaling.type", "unsupported rope scaling type 'wavy'"});

  // rope_freqs.weight as llama.cpp writes it for Llama-3.1 (factor 8, low 1, high 4, 8192).
  std::vector<float> freqs;
  for (int i = 0; i < kHeadDim / 2; ++i) {
    double f = 1.0 / std::pow(500000.0, 2.0 * i / kHeadDim), wl = 2 * std::numbers::pi / f;
    double smooth = (8192 / wl - 1) / 3;
    freqs.push_back(wl < 2048 ? 1.0f : wl > 8192 ? 8.0f : float(1 / ((1 - smooth) / 8 + smooth)));
  }
  GgufWriter l3 = tiny_model("llama");
  l3.add_f32("rope_freqs.weight", {uint64_t(freqs.size())}, freqs);
  ModelSource s3 = load(l3);
  EXPECT_EQ(s3.config.rope_scaling.type, "llama3");
  EXPECT_FLOAT_EQ(s3.config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(s3.config.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(s3.weights.contains("rope_freqs.weight"));

  freqs[1] *= 1.5f;
  GgufWriter l3bad = tiny_model("llama");
  l3bad.add_f32("rope_freqs.weight", {uint64_t(freqs.size())}, freqs);
  expect_error([&] { load(l3bad); }, {"rope_freqs.weight", "unsupported rope scaling"});
}

TEST(GgufLoader, NonFiniteBlockScaleNamesTheTensorAndRow) {
  // A NaN scale made every logit NaN: exit 0 with empty output.
  std::vector<std::byte> k = q8_rows_tagged(kKvHeads * kHeadDim);
  k[5 * 34 + 0] = std::byte(0x00);
  k[5 * 34 + 1] = std::byte(0x7E);  // fp16 NaN
  for (DType to : {DType::F32, DType::F16}) {
    LoadOptions o;
    o.dequant_to = to;
    expect_error([&] { load(tiny_model("llama", false, k), o); },
                 {"tensor 'blk.0.attn_k.weight': row 5: a NaN or infinite block scale"});
  }
  k[5 * 34 + 1] = std::byte(0x7C);  // fp16 +Inf
  expect_error([&] { load(tiny_model("llama", false, k)); }, {"tensor 'blk.0.attn_k.weight': row 5"});
}

// The checks load_model_source runs on what every reader returns.
ModelSource load_source(const GgufWriter& w) {
  TempPath p("gguf-src");
  w.write(p.str());
  return load_model_source(p.str(), f32());
}

TEST(GgufLoader, TokenizerLargerThanTheVocabularyIsAnError) {
  GgufWriter w = tiny_model("llama");
  w.set_u32("llama.vocab_size", 4);  // 6 tokens
  expect_error([&] { load_source(w); },
               {"the tokenizer has 6 tokens, more than the model's vocab_size of 4: ids from 4 on have no embedding"});
}

TEST(GgufLoader, DuplicateVocabularyEntriesAreAWarning) {
  EXPECT_TRUE(load_source(tiny_model("llama")).warnings.empty());
  GgufWriter w = tiny_model("llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a", "b", "ab", "b"});
  w.set_i32_array("tokenizer.ggml.token_type", {3, 3, 1, 1, 1, 1});
  ModelSource s = load_source(w);
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings[0].find("the vocabulary has 1 duplicate entry (\"b\" at ids 3 and 5); text encodes to the "
                               "lower id"),
            std::string::npos)
      << s.warnings[0];
}

TEST(GgufLoader, SlidingWindowOutOfRangeIsAnError) {
  GgufWriter w = tiny_model("llama");
  w.set_u32("llama.attention.sliding_window", 0xFFFFFFFFu);  // read as -1, "no window", before
  expect_error([&] { load(w); }, {"metadata key 'llama.attention.sliding_window': 4294967295 is out of range"});
  w.set_u32("llama.attention.sliding_window", 4096);
  EXPECT_EQ(load(w).config.sliding_window, 4096);
}

TEST(GgufLoader, BadMetadataNamesTheKey) {
  GgufWriter tok = tiny_model("llama");
  tok.set_string("tokenizer.ggml.model", "llama");
  expect_error([&] { load(tok); }, {"tokenizer.ggml.model", "unsupported tokenizer model 'llama'"});
  GgufWriter types = tiny_model("llama");
  types.set_i32_array("tokenizer.ggml.token_type", {1, 1});
  expect_error([&] { load(types); }, {"tokenizer.ggml.token_type", "2 entries for 6 tokens"});
  GgufWriter eos = tiny_model("llama");
  eos.set_u32("tokenizer.ggml.eos_token_id", 6);
  expect_error([&] { load(eos); }, {"tokenizer.ggml.eos_token_id", "outside the vocabulary"});
  GgufWriter heads = tiny_model("llama");
  heads.set_u32("llama.attention.head_count", 0);
  expect_error([&] { load(heads); }, {"llama.attention.head_count", "out of range"});
  GgufWriter missing = tiny_model("llama");
  missing.set_string("llama.embedding_length", "32");
  expect_error([&] { load(missing); }, {"llama.embedding_length", "expected uint32, found string"});
  GgufWriter odd = tiny_model("llama");
  odd.set_u32("llama.attention.head_count", 3);
  odd.set_u32("llama.attention.head_count_kv", 3);
  odd.set_u32("llama.attention.key_length", 8);
  expect_error([&] { load(odd); }, {"blk.0.attn_q.weight", "cannot undo the Q/K permutation"});
}

// ---- The real SmolLM2-135M Q4_1 file (skipped when absent) ----

class RealGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = gguf_test::model_path();
    if (!std::filesystem::exists(path_)) GTEST_SKIP() << "model not found at " << path_ << " (set UPG_MODEL)";
  }
  std::string path_;
};

TEST_F(RealGguf, LoadsSmolLM2) {
  auto t0 = std::chrono::steady_clock::now();
  ModelSource s = load_gguf(path_, f32_hf_order());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("load_gguf(%s): %.3f s\n", path_.c_str(), secs);

  EXPECT_EQ(s.weights.all().size(), 272u);
  const ModelConfig& c = s.config;
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.partial_rotary_factor, 1.0f);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{2}));

  ASSERT_TRUE(s.tokenizer.has_value());
  EXPECT_EQ(s.tokenizer->vocab.size(), 49152u);
  EXPECT_EQ(s.tokenizer->merges.size(), 48900u);
  EXPECT_EQ(s.tokenizer->pre_tokenizer, "smollm");
  EXPECT_FALSE(s.tokenizer->add_bos);
  EXPECT_EQ(s.tokenizer->vocab[2], "<|im_end|>");
  EXPECT_NE(s.tokenizer->chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(info_value(s, "tensor types"), "Q4_1: 210, F32: 61, Q8_0: 1");
  EXPECT_EQ(info_value(s, "file.version"), "3");

  for (auto& [name, v] : s.weights.all()) {
    EXPECT_TRUE(name == "model.embed_tokens.weight" || name == "model.norm.weight" ||
                name.starts_with("model.layers."))
        << name;
    EXPECT_EQ(v.nbytes, dtype_bytes(v.dtype, v.numel())) << name;
  }
  EXPECT_EQ(s.weights.get("model.embed_tokens.weight").shape, (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(s.weights.get("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{192, 576}));
  EXPECT_EQ(s.weights.get("model.layers.0.mlp.down_proj.weight").shape, (std::vector<int64_t>{576, 1536}));

  // The loaded K rows equal GGUF rows dequantized and moved by the un-permutation.
  GgufFile g = GgufFile::open(path_);
  const GgufTensorInfo& kt = *g.find_tensor("blk.5.attn_k.weight");
  std::vector<float> raw(size_t(kt.numel()));
  dequantize_row(kt.dtype, kt.data, raw.data(), kt.numel());
  const TensorView& k = s.weights.get("model.layers.5.self_attn.k_proj.weight");
  auto map = qk_unpermute_rows(192, 3);
  for (int r = 0; r < 192; ++r)
    ASSERT_EQ(0, std::memcmp(k.as<float>() + r * 576, raw.data() + map[size_t(r)] * 576, 576 * 4)) << r;
}

}  // namespace
}  // namespace upg::io

namespace upg::io {
namespace {

TEST(RealGgufAsStored, KeepsTensorsAsInTheFile) {
  const std::string path = gguf_test::model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "model not found at " << path;
  LoadOptions o;
  o.as_stored = true;
  ModelSource s = load_gguf(path, o);
  EXPECT_EQ(s.weights.get("model.layers.0.self_attn.q_proj.weight").dtype, DType::Q4_1);
  EXPECT_EQ(s.weights.get("model.embed_tokens.weight").dtype, DType::Q8_0);
  EXPECT_EQ(s.weights.get("model.norm.weight").dtype, DType::F32);
  EXPECT_EQ(s.weights.all().size(), 272u);
}

}  // namespace
}  // namespace upg::io
