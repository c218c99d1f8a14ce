#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/hf-config.h"
#include "io/safetensors-test-util.h"
#include "upg/io/io.h"

namespace upg {
namespace {

using io::testing::expect_error;
using Json = nlohmann::json;

// SmolLM2-135M-Instruct's config.json (abridged to the keys that matter).
Json smollm() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000,
    "rope_scaling": null, "tie_word_embeddings": true, "hidden_act": "silu",
    "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2})");
}

ModelConfig parse(const Json& j) { return parse_hf_config(j.dump(), "m/config.json"); }

TEST(HfConfig, Llama) {
  ModelConfig c = parse(smollm());
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_FLOAT_EQ(c.partial_rotary_factor, 1.0f);
  EXPECT_EQ(c.rope_scaling.type, "none");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.hidden_act, "silu");
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
}

TEST(HfConfig, Defaults) {
  Json j = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 256}, {"intermediate_size", 512},
            {"num_hidden_layers", 2}, {"num_attention_heads", 8}, {"vocab_size", 100}};
  ModelConfig c = parse(j);
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(c.partial_rotary_factor, 1.0f);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.hidden_act, "silu");
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.rope_scaling.type, "none");
  // null behaves like absent
  j["num_key_value_heads"] = nullptr;
  j["eos_token_id"] = nullptr;
  EXPECT_EQ(parse(j).num_kv_heads, 8);
  // explicit head_dim wins over hidden / heads
  j["head_dim"] = 64;
  EXPECT_EQ(parse(j).head_dim, 64);
}

TEST(HfConfig, LlamaAttentionBiasAndEosList) {
  Json j = smollm();
  j["attention_bias"] = true;
  j["eos_token_id"] = {128001, 128008, 128009};
  ModelConfig c = parse(j);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
}

TEST(HfConfig, Mistral) {
  Json j = smollm();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  j["sliding_window"] = 4096;
  ModelConfig c = parse(j);
  EXPECT_EQ(c.architecture, "MistralForCausalLM");
  EXPECT_EQ(c.sliding_window, 4096);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(parse(j).sliding_window, 0);
}

TEST(HfConfig, Qwen2) {
  // Qwen2.5-0.5B-Instruct.
  Json j = Json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
    "use_sliding_window": false, "tie_word_embeddings": true, "hidden_act": "silu",
    "bos_token_id": 151643, "eos_token_id": 151645, "rope_scaling": null})");
  ModelConfig c = parse(j);
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.attention_bias);  // Qwen2 always has q/k/v biases
  EXPECT_EQ(c.sliding_window, 0);  // ignored unless use_sliding_window
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  j["use_sliding_window"] = true;
  EXPECT_EQ(parse(j).sliding_window, 32768);
}

TEST(HfConfig, Phi3LongRope) {
  // Phi-4-mini-instruct: partial rotary and longrope with the original length at top level.
  Json j = Json::parse(R"({
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072,
    "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 24,
    "num_key_value_heads": 8, "vocab_size": 200064, "max_position_embeddings": 131072,
    "original_max_position_embeddings": 4096, "partial_rotary_factor": 0.75,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": true,
    "hidden_act": "silu", "sliding_window": 262144, "bos_token_id": 199999,
    "eos_token_id": 199999})");
  std::vector<float> s(48, 1.0f), l(48, 2.5f);
  s[3] = 1.25f;
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", s}, {"long_factor", l}};
  ModelConfig c = parse(j);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FLOAT_EQ(c.partial_rotary_factor, 0.75f);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.sliding_window, 262144);
  EXPECT_EQ(c.rope_scaling.type, "longrope");
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 32.0f);  // 131072 / 4096
  EXPECT_EQ(c.rope_scaling.short_factor, s);
  EXPECT_EQ(c.rope_scaling.long_factor, l);

  // Phi-3 wrote "su"; an explicit original length inside rope_scaling wins.
  j["rope_scaling"]["type"] = "su";
  j["rope_scaling"]["original_max_position_embeddings"] = 8192;
  c = parse(j);
  EXPECT_EQ(c.rope_scaling.type, "longrope");
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);

  j["rope_scaling"]["long_factor"] = std::vector<float>(64, 1.0f);
  expect_error([&] { parse(j); }, {"m/config.json", "'rope_scaling.long_factor'", "64 entries", "needs 48"});
  j["rope_scaling"]["long_factor"] = {1, "x"};
  expect_error([&] { parse(j); }, {"'rope_scaling.long_factor' must be a number"});
  j["rope_scaling"].erase("long_factor");
  expect_error([&] { parse(j); }, {"'rope_scaling.long_factor' is missing"});
  j.erase("original_max_position_embeddings");
  j["rope_scaling"]["long_factor"] = l;
  j["rope_scaling"].erase("original_max_position_embeddings");
  expect_error([&] { parse(j); }, {"'rope_scaling.original_max_position_embeddings' is missing"});
}

TEST(HfConfig, RopeScalingVariants) {
  Json j = smollm();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(parse(j).rope_scaling.type, "linear");
  EXPECT_FLOAT_EQ(parse(j).rope_scaling.factor, 2.0f);

  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 4}};
  EXPECT_EQ(parse(j).rope_scaling.type, "dynamic");
  EXPECT_FLOAT_EQ(parse(j).rope_scaling.factor, 4.0f);

  // Llama-3.2 style, with the newer "rope_type" key.
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  RopeScaling r = parse(j).rope_scaling;
  EXPECT_EQ(r.type, "llama3");
  EXPECT_FLOAT_EQ(r.factor, 32.0f);
  EXPECT_FLOAT_EQ(r.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(r.high_freq_factor, 4.0f);
  EXPECT_EQ(r.original_max_position_embeddings, 8192);

  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  r = parse(j).rope_scaling;
  EXPECT_EQ(r.type, "yarn");
  EXPECT_FLOAT_EQ(r.factor, 4.0f);
  EXPECT_EQ(r.original_max_position_embeddings, 32768);
  j["rope_scaling"].erase("original_max_position_embeddings");
  EXPECT_EQ(parse(j).rope_scaling.original_max_position_embeddings, 8192);  // max_position_embeddings

  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).rope_scaling.type, "none");
}

TEST(HfConfig, Transformers5RopeParameters) {
  // transformers 5 writes rope_theta and the scaling into "rope_parameters".
  Json j = smollm();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_theta", 500000.0},
                          {"rope_type", "llama3"},
                          {"factor", 8.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  ModelConfig c = parse(j);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);

  j["rope_parameters"] = {{"rope_theta", 1e6}, {"rope_type", "default"}};
  c = parse(j);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.rope_scaling.type, "none");

  // An old-style top-level key wins.
  j["rope_theta"] = 20000.0;
  EXPECT_FLOAT_EQ(parse(j).rope_theta, 20000.0f);

  // Phi-3 as saved by transformers 5: partial_rotary_factor inside rope_parameters too.
  Json p = Json::parse(R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "max_position_embeddings": 4096, "original_max_position_embeddings": 1024,
    "rope_parameters": {"long_factor": [2.0, 2.0, 2.0, 2.0, 2.0, 2.0], "original_max_position_embeddings": 1024,
      "partial_rotary_factor": 0.75, "rope_theta": 10000.0, "rope_type": "longrope",
      "short_factor": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], "type": "longrope"}, "sliding_window": null})");
  c = parse(p);
  EXPECT_FLOAT_EQ(c.partial_rotary_factor, 0.75f);
  EXPECT_EQ(c.rope_scaling.type, "longrope");
  EXPECT_EQ(c.rope_scaling.long_factor.size(), 6u);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 4.0f);

  j["rope_parameters"] = {{"rope_type", "mrope"}};
  expect_error([&] { parse(j); }, {"'rope_parameters.rope_type'", "'mrope' is not supported"});
  j["rope_parameters"] = {1, 2};
  expect_error([&] { parse(j); }, {"'rope_parameters' must be an object"});
}

TEST(HfConfig, RopeScalingRejects) {
  Json j = smollm();
  j["rope_scaling"] = {{"type", "ntk-by-parts"}, {"factor", 2.0}};
  expect_error([&] { parse(j); }, {"m/config.json", "'rope_scaling.type'", "'ntk-by-parts' is not supported"});
  j["rope_scaling"] = {{"rope_type", "mrope"}};
  expect_error([&] { parse(j); }, {"'rope_scaling.rope_type'", "'mrope'"});
  j["rope_scaling"] = {{"factor", 2.0}};
  expect_error([&] { parse(j); }, {"'rope_scaling.type' is missing"});
  j["rope_scaling"] = {{"type", "linear"}};
  expect_error([&] { parse(j); }, {"'rope_scaling.factor' is missing"});
  j["rope_scaling"] = {{"type", "linear"}, {"factor", "2"}};
  expect_error([&] { parse(j); }, {"'rope_scaling.factor' must be a number"});
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}};
  expect_error([&] { parse(j); }, {"'rope_scaling.original_max_position_embeddings' is missing"});
  j["rope_scaling"] = "linear";
  expect_error([&] { parse(j); }, {"'rope_scaling' must be an object"});
}

TEST(HfConfig, Rejects) {
  Json j = smollm();
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_error([&] { parse(j); }, {"m/config.json", "unsupported architecture 'GPT2LMHeadModel'",
                                   "LlamaForCausalLM", "Phi3ForCausalLM"});
  j.erase("architectures");
  expect_error([&] { parse(j); }, {"'architectures' is missing"});
  j["architectures"] = Json::array();
  expect_error([&] { parse(j); }, {"'architectures' must be a non-empty list"});

  j = smollm();
  j["hidden_act"] = "gelu";
  expect_error([&] { parse(j); }, {"m/config.json", "'hidden_act'", "'gelu' is not supported"});

  j = smollm();
  j["num_key_value_heads"] = 4;  // does not divide 9
  expect_error([&] { parse(j); }, {"'num_key_value_heads'", "does not divide"});

  j = smollm();
  j["num_attention_heads"] = 7;  // 576 % 7 != 0 and no head_dim
  j["num_key_value_heads"] = 1;
  expect_error([&] { parse(j); }, {"'num_attention_heads'", "hidden_size"});

  j = smollm();
  j["partial_rotary_factor"] = 1.5;
  expect_error([&] { parse(j); }, {"'partial_rotary_factor'", "(0, 1]"});

  j = smollm();
  j.erase("vocab_size");
  expect_error([&] { parse(j); }, {"'vocab_size' is missing"});

  // A negative token id is no token (null is the way to say none); found by the fuzzer:
  // -11 read as a token and written back as null.
  j = smollm();
  j["bos_token_id"] = -11;
  expect_error([&] { parse(j); }, {"'bos_token_id'", "must be a token id (0 or more), got -11"});
  j = smollm();
  j["eos_token_id"] = {2, -1};
  expect_error([&] { parse(j); }, {"'eos_token_id'", "must hold token ids (0 or more), got -1"});
  j = smollm();
  j["bos_token_id"] = nullptr;
  EXPECT_EQ(parse(j).bos_token_id, -1);

  expect_error([] { parse_hf_config("{not json", "m/config.json"); }, {"m/config.json", "not valid JSON"});
  const std::string deep = "{\"a\":" + std::string(100000, '{') + "}";
  expect_error([&] { parse_hf_config(deep, "m/config.json"); }, {"m/config.json", "nested deeper than 64 levels"});
  expect_error([] { parse_hf_config("[1]", "m/config.json"); }, {"m/config.json", "must be a JSON object"});
}

TEST(HfConfig, WrongTypes) {
  struct Case {
    const char* key;
    Json value;
    const char* what;
  } cases[] = {
      {"hidden_size", "576", "must be an integer"},
      {"num_hidden_layers", 2.5, "must be an integer"},
      {"num_attention_heads", 0, "must be positive"},
      {"vocab_size", -5, "must be positive"},
      {"intermediate_size", 1e12, "must be an integer"},
      {"max_position_embeddings", 4294967296LL, "out of range"},
      {"rms_norm_eps", "1e-5", "must be a number"},
      {"rope_theta", true, "must be a number"},
      {"tie_word_embeddings", "true", "must be true or false"},
      {"attention_bias", 1, "must be true or false"},
      {"hidden_act", 3, "must be a string"},
      {"sliding_window", "4096", "must be an integer"},
      {"bos_token_id", "1", "must be an integer"},
      {"eos_token_id", Json::array({2, "x"}), "must be an integer"},
      {"model_type", 1, "must be a string"},
  };
  for (const auto& c : cases) {
    Json j = smollm();
    j[c.key] = c.value;
    expect_error([&] { parse(j); }, {"m/config.json", std::string("'") + c.key + "'", c.what});
  }
  Json deep = smollm();
  deep.erase("hidden_size");
  std::string text = deep.dump();
  // Under the parser's 64-level limit: the bad value is named by its type, not dumped.
  text.insert(1, R"("hidden_size": )" + std::string(60, '[') + std::string(60, ']') + ",");
  expect_error([&] { parse_hf_config(text, "m/config.json"); }, {"'hidden_size' must be an integer, got array"});
  // Integral floats are accepted for integer keys.
  Json j = smollm();
  j["hidden_size"] = 576.0;
  EXPECT_EQ(parse(j).hidden_size, 576);
}

TEST(HfConfig, GenerationConfigOverrides) {
  ModelConfig c = parse(smollm());
  io::apply_generation_config(R"({"bos_token_id": 5, "eos_token_id": [2, 7], "temperature": 0.2})", "g.json", c);
  EXPECT_EQ(c.bos_token_id, 5);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{2, 7}));
  io::apply_generation_config(R"({"eos_token_id": 9})", "g.json", c);
  EXPECT_EQ(c.bos_token_id, 5);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{9});
  expect_error([&] { io::apply_generation_config(R"({"eos_token_id": "x"})", "g.json", c); },
               {"g.json", "'eos_token_id'"});
  expect_error([&] { io::apply_generation_config("{", "g.json", c); }, {"g.json", "not valid JSON"});
}

}  // namespace
}  // namespace upg
