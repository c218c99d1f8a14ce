#include "io/hf-directory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/safetensors-test-util.h"
#include "io/safetensors-writer.h"
#include "upg/io/io.h"

namespace upg::io {
namespace {

using testing::expect_error;
using testing::raw_safetensors;
using testing::TempDir;
using testing::write_file;

constexpr const char* kConfig = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
  "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "vocab_size": 4, "max_position_embeddings": 64,
  "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2})";

// Writes `names` as F32 tensors of shape [2, 4] whose values encode the tensor's index.
void write_shard(const std::string& path, const std::vector<std::string>& names, float base) {
  std::vector<SafetensorsEntry> entries;
  for (const auto& n : names) entries.push_back({n, DType::F32, {2, 4}});
  SafetensorsWriter w(path, entries, {{"format", "pt"}});
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<float> v(8, base + float(i));
    w.write(names[i], std::as_bytes(std::span(v)));
  }
  w.finish();
}

const std::vector<std::string> kShardA = {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"};
const std::vector<std::string> kShardB = {"model.layers.0.mlp.up_proj.weight", "model.norm.weight"};

std::string index_json(const std::string& extra_entry = "") {
  std::string s = R"({"metadata": {"total_size": 128}, "weight_map": {)";
  for (const auto& n : kShardA) s += "\"" + n + R"(": "model-00001-of-00002.safetensors",)";
  for (const auto& n : kShardB) s += "\"" + n + R"(": "model-00002-of-00002.safetensors",)";
  s += extra_entry;
  if (s.back() == ',') s.pop_back();
  return s + "}}";
}

void make_sharded(const TempDir& dir) {
  write_file(dir.file("config.json"), kConfig);
  write_shard(dir.file("model-00001-of-00002.safetensors"), kShardA, 10);
  write_shard(dir.file("model-00002-of-00002.safetensors"), kShardB, 20);
  write_file(dir.file("model.safetensors.index.json"), index_json());
}

std::string info(const ModelSource& s, const std::string& key) {
  for (const auto& [k, v] : s.info)
    if (k == key) return v;
  return "<absent>";
}

TEST(HfDirectory, SingleFile) {
  TempDir dir;
  write_file(dir.file("config.json"), kConfig);
  write_shard(dir.file("model.safetensors"), kShardA, 1);
  ModelSource s = load_hf_directory(dir.path().string(), {});
  EXPECT_EQ(s.format, "safetensors");
  EXPECT_EQ(s.path, dir.path().string());
  EXPECT_EQ(s.config.architecture, "LlamaForCausalLM");
  EXPECT_EQ(s.config.hidden_size, 8);
  EXPECT_TRUE(s.config.tie_word_embeddings);
  EXPECT_FALSE(s.weights.contains("lm_head.weight"));  // tied: the model layer reuses the embedding
  EXPECT_FALSE(s.tokenizer.has_value());
  ASSERT_EQ(s.weights.all().size(), 2u);
  const TensorView& q = s.weights.get("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.shape, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(q.as<float>()[7], 2.0f);
  EXPECT_EQ(s.file_bytes, std::filesystem::file_size(dir.file("model.safetensors")));
  EXPECT_EQ(info(s, "format"), "safetensors");
  EXPECT_EQ(info(s, "architecture"), "LlamaForCausalLM");
  EXPECT_EQ(info(s, "tensors"), "2");
  EXPECT_EQ(info(s, "bytes"), "64");
  EXPECT_EQ(info(s, "metadata.format"), "pt");
  EXPECT_EQ(s.weights.source, dir.path().string());
}

TEST(HfDirectory, GenerationConfigOverridesConfig) {
  TempDir dir;
  write_file(dir.file("config.json"), kConfig);
  write_shard(dir.file("model.safetensors"), kShardA, 1);
  write_file(dir.file("generation_config.json"), R"({"bos_token_id": 3, "eos_token_id": [2, 3]})");
  ModelSource s = load_hf_directory(dir.path().string(), {});
  EXPECT_EQ(s.config.bos_token_id, 3);
  EXPECT_EQ(s.config.eos_token_ids, (std::vector<int>{2, 3}));
  write_file(dir.file("generation_config.json"), R"({"eos_token_id": "two"})");
  expect_error([&] { load_hf_directory(dir.path().string(), {}); }, {"generation_config.json", "'eos_token_id'"});
}

TEST(HfDirectory, Tokenizer) {
  TempDir dir;
  write_file(dir.file("config.json"), kConfig);
  write_shard(dir.file("model.safetensors"), kShardA, 1);
  write_file(dir.file("tokenizer.json"), R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    "added_tokens": [{"id": 3, "content": "<|endoftext|>", "special": true}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
    "decoder": {"type": "ByteLevel"}})");
  ModelSource s = load_hf_directory(dir.path().string(), {});
  ASSERT_TRUE(s.tokenizer.has_value());
  EXPECT_EQ(s.tokenizer->vocab.size(), 4u);
  EXPECT_EQ(s.tokenizer->eos_id, -1);

  // tokenizer_config.json is optional; when present it is passed along.
  write_file(dir.file("tokenizer_config.json"), R"({"eos_token": "<|endoftext|>", "chat_template": "{{ x }}"})");
  s = load_hf_directory(dir.path().string(), {});
  ASSERT_TRUE(s.tokenizer.has_value());
  EXPECT_EQ(s.tokenizer->eos_id, 3);
  EXPECT_EQ(s.tokenizer->chat_template, "{{ x }}");

  write_file(dir.file("tokenizer.json"), "[]");
  expect_error([&] { load_hf_directory(dir.path().string(), {}); }, {dir.file("tokenizer.json")});
}

TEST(HfDirectory, Sharded) {
  TempDir dir;
  make_sharded(dir);
  ModelSource s = load_model_source(dir.path().string());
  EXPECT_EQ(s.format, "safetensors");
  ASSERT_EQ(s.weights.all().size(), 4u);
  EXPECT_EQ(s.weights.get("model.embed_tokens.weight").as<float>()[0], 10.0f);
  EXPECT_EQ(s.weights.get("model.norm.weight").as<float>()[3], 21.0f);
  EXPECT_EQ(info(s, "shards"), "2");
  EXPECT_EQ(info(s, "tensors"), "4");
  EXPECT_EQ(s.file_bytes, std::filesystem::file_size(dir.file("model-00001-of-00002.safetensors")) +
                              std::filesystem::file_size(dir.file("model-00002-of-00002.safetensors")));
}

TEST(HfDirectory, ShardedRejects) {
  TempDir dir;
  make_sharded(dir);
  const std::string d = dir.path().string();
  const std::string index = dir.file("model.safetensors.index.json");

  write_file(index, index_json(R"("lm_head.weight": "../evil.safetensors")"));
  expect_error([&] { load_hf_directory(d, {}); }, {index, "'weight_map.lm_head.weight'", "'../evil.safetensors'"});
  write_file(index, index_json(R"("lm_head.weight": "..")"));
  expect_error([&] { load_hf_directory(d, {}); }, {index, "shard name '..'"});
  write_file(index, index_json(R"("lm_head.weight": "/etc/passwd")"));
  expect_error([&] { load_hf_directory(d, {}); }, {index, "shard name '/etc/passwd'"});

  write_file(index, index_json(R"("lm_head.weight": "model-00003-of-00002.safetensors")"));
  expect_error([&] { load_hf_directory(d, {}); },
               {index, "shard 'model-00003-of-00002.safetensors'", "'lm_head.weight'", "does not exist"});

  write_file(index, index_json(R"("lm_head.weight": "model-00002-of-00002.safetensors")"));
  expect_error([&] { load_hf_directory(d, {}); },
               {index, "tensor 'lm_head.weight' is mapped to shard 'model-00002-of-00002.safetensors' but is not in it"});

  write_file(index, index_json(R"("lm_head.weight": 7)"));
  expect_error([&] { load_hf_directory(d, {}); }, {index, "'weight_map.lm_head.weight' must be a file name"});

  write_file(index, R"({"metadata": {}})");
  expect_error([&] { load_hf_directory(d, {}); }, {index, "'weight_map' is missing"});
  write_file(index, R"({"weight_map": [1]})");
  expect_error([&] { load_hf_directory(d, {}); }, {index, "'weight_map' must be a non-empty object"});
  write_file(index, "{");
  expect_error([&] { load_hf_directory(d, {}); }, {index, "not valid JSON"});

  // The same tensor stored in two shards is ambiguous.
  write_shard(dir.file("model-00002-of-00002.safetensors"), {"model.norm.weight", "model.embed_tokens.weight"}, 0);
  write_file(index, index_json());
  expect_error([&] { load_hf_directory(d, {}); }, {index, "tensor 'model.embed_tokens.weight' is in two shards"});

  // A corrupt shard reports the shard's own path.
  write_file(dir.file("model-00002-of-00002.safetensors"), "short");
  expect_error([&] { load_hf_directory(d, {}); }, {dir.file("model-00002-of-00002.safetensors"), "too short"});
}

TEST(HfDirectory, Rejects) {
  TempDir dir;
  const std::string d = dir.path().string();
  write_file(dir.file("config.json"), kConfig);
  expect_error([&] { load_hf_directory(d, {}); }, {d, "no model.safetensors or model.safetensors.index.json"});

  std::filesystem::remove(dir.file("config.json"));
  write_shard(dir.file("model.safetensors"), kShardA, 1);
  expect_error([&] { load_hf_directory(d, {}); }, {d, "no config.json"});

  write_file(dir.file("config.json"), R"({"architectures": ["BertModel"]})");
  expect_error([&] { load_hf_directory(d, {}); }, {dir.file("config.json"), "unsupported architecture 'BertModel'"});
}

TEST(HfDirectory, MisalignedTensorIsCopied) {
  // A U8 tensor of 1 byte before an F32 one puts the F32 data at an odd address.
  TempDir dir;
  write_file(dir.file("config.json"), kConfig);
  std::string data(5, '\0');
  data[0] = 9;
  float v = 3.5f;
  std::memcpy(data.data() + 1, &v, 4);
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  write_file(dir.file("model.safetensors"), raw_safetensors(header, data));
  ModelSource s = load_hf_directory(dir.path().string(), {});
  const TensorView& b = s.weights.get("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 4, 0u);
  EXPECT_EQ(b.as<float>()[0], 3.5f);
  EXPECT_EQ(std::to_integer<int>(s.weights.get("a").data[0]), 9);
}

TEST(ModelSource, SafetensorsFilePath) {
  TempDir dir;
  write_file(dir.file("config.json"), kConfig);
  write_shard(dir.file("weights.safetensors"), kShardB, 5);
  ModelSource s = load_model_source(dir.file("weights.safetensors"));
  EXPECT_EQ(s.format, "safetensors");
  EXPECT_EQ(s.path, dir.file("weights.safetensors"));
  EXPECT_EQ(s.weights.get("model.norm.weight").as<float>()[0], 6.0f);

  // No extension: recognised by the header ('{' after the length prefix).
  std::filesystem::copy_file(dir.file("weights.safetensors"), dir.file("weights"));
  EXPECT_EQ(load_model_source(dir.file("weights")).weights.all().size(), 2u);

  std::filesystem::remove(dir.file("config.json"));
  expect_error([&] { load_model_source(dir.file("weights.safetensors")); },
               {dir.file("weights.safetensors"), "no config.json"});
}

TEST(ModelSource, Rejects) {
  expect_error([] { load_model_source("/nonexistent/model.gguf"); },
               {"/nonexistent/model.gguf: no such file or directory"});
  TempDir dir;
  write_file(dir.file("notes.txt"), "hello, this is not a model");
  expect_error([&] { load_model_source(dir.file("notes.txt")); }, {dir.file("notes.txt"), "unrecognised model format"});
}

}  // namespace
}  // namespace upg::io
