// to_hf_config_json: the inverse of parse_hf_config, for models whose source (GGUF)
// carries no config.json. Keys follow the transformers config classes of each
// architecture, so `transformers` builds the same model that parse_hf_config describes.
#include "upg/io/hf-config-writer.h"

#include <cmath>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/arch/arch-registry.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

using Json = nlohmann::ordered_json;

// The shortest decimal that reads back as the same float: 1e-05, not 9.99999974e-06.
double tidy(float f) { return std::stod(fmt::format("{}", f)); }

Json float_list(const std::vector<float>& v) {
  Json out = Json::array();
  for (float f : v) out.push_back(tidy(f));
  return out;
}

Json rope_scaling(const ModelConfig& c, Json& top) {
  const RopeScaling& r = c.rope_scaling;
  if (r.type == "none") return nullptr;
  Json j = Json::object();
  if (r.type == "longrope") {
    // Phi-3's config class accepts exactly type, short_factor and long_factor (and the
    // original context length at the top level); parse_hf_config derives the factor
    // from the two context lengths, so it is written only when it differs.
    j["type"] = "longrope";
    j["short_factor"] = float_list(r.short_factor);
    j["long_factor"] = float_list(r.long_factor);
    top["original_max_position_embeddings"] = r.original_max_position_embeddings;
    const float derived = float(c.max_position_embeddings) / float(r.original_max_position_embeddings);
    if (r.factor != derived) j["factor"] = tidy(r.factor);
    return j;
  }
  j["rope_type"] = r.type;
  j["factor"] = tidy(r.factor);
  if (r.type == "llama3") {
    j["low_freq_factor"] = tidy(r.low_freq_factor);
    j["high_freq_factor"] = tidy(r.high_freq_factor);
    j["original_max_position_embeddings"] = r.original_max_position_embeddings;
  } else if (r.type == "yarn") {
    j["original_max_position_embeddings"] = r.original_max_position_embeddings;
  } else if (r.type != "linear" && r.type != "dynamic") {
    throw Error(fmt::format("config.json writer: rope scaling type '{}' is not supported", r.type));
  }
  return j;
}

}  // namespace

std::string to_hf_config_json(const ModelConfig& c, std::string_view torch_dtype) {
  const ArchSpec& arch = find_arch(c.architecture, "config.json writer");
  // Hugging Face models rotate halves; weights loaded in llama.cpp's Q/K order would be
  // written wrong beside this config (LoadOptions::keep_gguf_qk_rows off avoids it).
  if (c.rope_interleaved)
    throw Error("config.json writer: the model's Q/K rows are in llama.cpp's order, not Hugging Face's");

  Json j = Json::object();
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = tidy(c.rms_norm_eps);
  j["rope_theta"] = tidy(c.rope_theta);
  if (arch.writes_partial_rotary_factor || c.partial_rotary_factor != 1.0f)
    j["partial_rotary_factor"] = tidy(c.partial_rotary_factor);
  j["rope_scaling"] = rope_scaling(c, j);
  j["hidden_act"] = c.hidden_act;
  // Only the config classes whose bias comes from the config have the keys.
  if (arch.qkv_bias == BiasRule::FromConfig) {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = false;
  }
  if (arch.sliding_window == WindowRule::BehindSwitch) j["use_sliding_window"] = c.sliding_window > 0;
  if (arch.sliding_window != WindowRule::IfSet || c.sliding_window > 0)
    j["sliding_window"] = c.sliding_window > 0 ? Json(c.sliding_window) : Json(nullptr);
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id >= 0 ? Json(c.bos_token_id) : Json(nullptr);
  if (c.eos_token_ids.empty())
    j["eos_token_id"] = nullptr;
  else if (c.eos_token_ids.size() == 1)
    j["eos_token_id"] = c.eos_token_ids[0];
  else
    j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = std::string(torch_dtype);
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

}  // namespace upg::io
