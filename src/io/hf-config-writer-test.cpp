// to_hf_config_json: parse_hf_config reads back an equal ModelConfig for every
// architecture and rope scaling variant, and the keys transformers needs are present.
#include "core/test-paths.h"
#include "upg/io/hf-config-writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg::io {
namespace {

void expect_equal(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.partial_rotary_factor, b.partial_rotary_factor);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
  EXPECT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings, b.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(a.rope_scaling.short_factor, b.rope_scaling.short_factor);
  EXPECT_EQ(a.rope_scaling.long_factor, b.rope_scaling.long_factor);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.hidden_act, b.hidden_act);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
}

ModelConfig llama() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_layers = 30;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.vocab_size = 49152;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 100000.0f;
  c.tie_word_embeddings = true;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

ModelConfig round_trip(const ModelConfig& c) { return parse_hf_config(to_hf_config_json(c), "written"); }

TEST(HfConfigWriter, LlamaRoundTripsWithTidyNumbers) {
  const ModelConfig c = llama();
  expect_equal(round_trip(c), c);
  const auto j = nlohmann::json::parse(to_hf_config_json(c));
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_TRUE(j["rope_scaling"].is_null());
  EXPECT_EQ(j["eos_token_id"], 2);
  // The float 1e-5f is written as the short decimal a person would write.
  EXPECT_NE(to_hf_config_json(c).find("\"rms_norm_eps\": 1e-05"), std::string::npos) << to_hf_config_json(c);
}

TEST(HfConfigWriter, EveryArchitectureAndRopeScaling) {
  ModelConfig l3 = llama();
  l3.rope_scaling.type = "llama3";
  l3.rope_scaling.factor = 8;
  l3.rope_scaling.low_freq_factor = 1;
  l3.rope_scaling.high_freq_factor = 4;
  l3.rope_scaling.original_max_position_embeddings = 8192;
  l3.eos_token_ids = {128001, 128008, 128009};
  l3.bos_token_id = -1;
  expect_equal(round_trip(l3), l3);

  ModelConfig lin = llama();
  lin.rope_scaling.type = "linear";
  lin.rope_scaling.factor = 2.5f;
  lin.attention_bias = true;
  expect_equal(round_trip(lin), lin);

  ModelConfig yarn = llama();
  yarn.rope_scaling.type = "yarn";
  yarn.rope_scaling.factor = 4;
  yarn.rope_scaling.original_max_position_embeddings = 2048;
  yarn.eos_token_ids.clear();
  expect_equal(round_trip(yarn), yarn);

  ModelConfig mistral = llama();
  mistral.architecture = "MistralForCausalLM";
  mistral.model_type = "mistral";
  mistral.sliding_window = 4096;
  expect_equal(round_trip(mistral), mistral);
  mistral.sliding_window = 0;
  expect_equal(round_trip(mistral), mistral);

  ModelConfig qwen = llama();
  qwen.architecture = "Qwen2ForCausalLM";
  qwen.model_type = "qwen2";
  qwen.attention_bias = true;
  qwen.rms_norm_eps = 1e-6f;
  qwen.rope_theta = 1000000.0f;
  expect_equal(round_trip(qwen), qwen);
  qwen.sliding_window = 32768;
  expect_equal(round_trip(qwen), qwen);

  ModelConfig phi = llama();
  phi.architecture = "Phi3ForCausalLM";
  phi.model_type = "phi3";
  phi.head_dim = 96;
  phi.num_heads = 6;
  phi.num_kv_heads = 6;
  phi.partial_rotary_factor = 0.5f;
  phi.max_position_embeddings = 131072;
  phi.rope_scaling.type = "longrope";
  phi.rope_scaling.original_max_position_embeddings = 4096;
  phi.rope_scaling.factor = 32;
  phi.rope_scaling.short_factor.assign(24, 1.05f);
  phi.rope_scaling.long_factor.assign(24, 3.5f);
  phi.sliding_window = 262144;
  expect_equal(round_trip(phi), phi);
  const auto j = nlohmann::json::parse(to_hf_config_json(phi));
  // transformers' Phi-3 config accepts exactly these three rope_scaling keys.
  EXPECT_EQ(j["rope_scaling"].size(), 3u);
  EXPECT_EQ(j["original_max_position_embeddings"], 4096);
}

TEST(HfConfigWriter, RejectsWhatItCannotWrite) {
  ModelConfig c = llama();
  c.architecture = "GPTNeoXForCausalLM";
  EXPECT_THROW(to_hf_config_json(c), Error);
  c = llama();
  c.rope_scaling.type = "mystery";
  EXPECT_THROW(to_hf_config_json(c), Error);
}

std::string model_path() { return test::default_model_path(); }

TEST(HfConfigWriter, GgufConfigRoundTrips) {
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "model file " << model_path() << " is absent";
  LoadOptions opts;
  opts.as_stored = true;
  const ModelSource src = load_model_source(model_path(), opts);
  expect_equal(round_trip(src.config), src.config);
}

}  // namespace
}  // namespace upg::io
