// parse_hf_config: config.json -> ModelConfig for the architectures of
// upg/arch/arch-registry.h, with their defaults. Anything the model layer could not run is
// rejected here, so a wrong model fails at load with the offending key named, not
// mid-inference.
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/arch/arch-registry.h"
#include "upg/core/json.h"
#include "io/hf-config.h"
#include "io/hf-json.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg {

namespace {

using Json = nlohmann::json;
using io::json_brief;

// Typed access to one JSON object, with errors naming `origin` and the dotted key.
class Fields {
 public:
  Fields(const Json& obj, std::string_view origin, std::string prefix = "")
      : obj_(obj), origin_(origin), prefix_(std::move(prefix)) {}

  // Present and not null.
  bool has(const char* key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  const Json& at(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) fail(key, "is missing");
    return *it;
  }
  std::string name(const char* key) const { return prefix_ + key; }

  [[noreturn]] void fail(const char* key, std::string_view what) const {
    throw Error(fmt::format("{}: '{}' {}", origin_, name(key), what));
  }

  int integer(const Json& v, const char* key) const {
    // Integral floats such as 4096.0 appear in hand-edited configs; accept them.
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(std::numeric_limits<int>::max())
                                 : (v.get<int64_t>() > std::numeric_limits<int>::max() ||
                                    v.get<int64_t>() < std::numeric_limits<int>::min()))
        fail(key, fmt::format("is out of range: {}", json_brief(v)));
      return int(v.get<int64_t>());
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::trunc(d) == d && std::fabs(d) <= double(std::numeric_limits<int>::max())) return int(d);
    }
    fail(key, fmt::format("must be an integer, got {}", json_brief(v)));
  }
  int integer(const char* key) const { return integer(at(key), key); }
  int integer(const char* key, int def) const { return has(key) ? integer(key) : def; }
  int positive(const char* key) const {
    int v = integer(key);
    if (v <= 0) fail(key, fmt::format("must be positive, got {}", v));
    return v;
  }
  int positive(const char* key, int def) const { return has(key) ? positive(key) : def; }

  float number(const Json& v, const char* key) const {
    if (!v.is_number()) fail(key, fmt::format("must be a number, got {}", json_brief(v)));
    double d = v.get<double>();
    if (!std::isfinite(float(d))) fail(key, fmt::format("is out of range: {}", json_brief(v)));
    return float(d);
  }
  float number(const char* key) const { return number(at(key), key); }
  float number(const char* key, float def) const { return has(key) ? number(key) : def; }

  bool boolean(const char* key, bool def) const {
    if (!has(key)) return def;
    const Json& v = at(key);
    if (!v.is_boolean()) fail(key, fmt::format("must be true or false, got {}", json_brief(v)));
    return v.get<bool>();
  }
  std::string string(const char* key, std::string def) const {
    if (!has(key)) return def;
    const Json& v = at(key);
    if (!v.is_string()) fail(key, fmt::format("must be a string, got {}", json_brief(v)));
    return v.get<std::string>();
  }
  std::vector<float> floats(const char* key) const {
    const Json& v = at(key);
    if (!v.is_array()) fail(key, fmt::format("must be an array of numbers, got {}", v.type_name()));
    std::vector<float> out;
    for (const auto& x : v) out.push_back(number(x, key));
    return out;
  }
  // A token id: 0 or more, or absent/null (-1).
  int token_id(const char* key) const {
    const int v = integer(key, -1);
    if (has(key) && v < 0) fail(key, fmt::format("must be a token id (0 or more), got {}", v));
    return v;
  }
  // Token ids: one, a list, or absent/null (empty); each 0 or more.
  std::vector<int> token_ids(const char* key) const {
    std::vector<int> out = int_list(key);
    for (int v : out)
      if (v < 0) fail(key, fmt::format("must hold token ids (0 or more), got {}", v));
    return out;
  }
  // An int, a list of ints, or absent/null (empty).
  std::vector<int> int_list(const char* key) const {
    if (!has(key)) return {};
    const Json& v = at(key);
    if (!v.is_array()) return {integer(v, key)};
    std::vector<int> out;
    for (const auto& x : v) out.push_back(integer(x, key));
    return out;
  }

 private:
  const Json& obj_;
  std::string_view origin_;
  std::string prefix_;
};

// `key` is "rope_scaling" or, in configs written by transformers 5, "rope_parameters"
// (the same fields plus rope_theta, and "default" as the type when there is no scaling).
RopeScaling parse_rope_scaling(const char* key, const Fields& top, const ModelConfig& c, std::string_view origin) {
  RopeScaling r;
  const Json& rs = top.at(key);
  if (!rs.is_object()) top.fail(key, fmt::format("must be an object or null, got {}", rs.type_name()));
  Fields f(rs, origin, std::string(key) + ".");
  // Newer transformers write "rope_type"; older ones "type". Either names the variant.
  const char* type_key = f.has("rope_type") ? "rope_type" : "type";
  std::string type = f.string(type_key, "");
  if (type.empty()) f.fail(type_key, "is missing");

  auto orig_max = [&](bool fallback_to_max) {
    if (f.has("original_max_position_embeddings")) return f.positive("original_max_position_embeddings");
    if (top.has("original_max_position_embeddings")) return top.positive("original_max_position_embeddings");
    if (fallback_to_max) return c.max_position_embeddings;
    f.fail("original_max_position_embeddings", fmt::format("is missing (neither in {} nor at the top level)", key));
  };
  auto factor = [&](const char* key, float def, bool required) {
    float v = required ? f.number(key) : f.number(key, def);
    if (!(v > 0)) f.fail(key, fmt::format("must be positive, got {}", v));
    return v;
  };

  if (type == "default" || type == "none") {
    r.type = "none";
  } else if (type == "linear" || type == "dynamic") {
    r.type = type;
    r.factor = factor("factor", 1, true);
  } else if (type == "llama3") {
    r.type = type;
    r.factor = factor("factor", 1, true);
    r.low_freq_factor = factor("low_freq_factor", 1, true);
    r.high_freq_factor = factor("high_freq_factor", 4, true);
    if (r.high_freq_factor <= r.low_freq_factor)
      f.fail("high_freq_factor", fmt::format("must exceed low_freq_factor ({} <= {})", r.high_freq_factor,
                                             r.low_freq_factor));
    r.original_max_position_embeddings = f.positive("original_max_position_embeddings");
  } else if (type == "longrope" || type == "su") {
    r.type = "longrope";
    r.short_factor = f.floats("short_factor");
    r.long_factor = f.floats("long_factor");
    r.original_max_position_embeddings = orig_max(false);
    // Phi-3 configs omit "factor"; the context extension ratio is what the attention
    // scaling formula uses, so derive it the way transformers does.
    r.factor = f.has("factor") ? factor("factor", 1, true)
                               : float(c.max_position_embeddings) / float(r.original_max_position_embeddings);
    size_t rotary = size_t(std::lround(c.head_dim * c.partial_rotary_factor)) / 2;
    if (r.short_factor.size() != rotary)
      f.fail("short_factor", fmt::format("has {} entries, the rotary dimension needs {}", r.short_factor.size(), rotary));
    if (r.long_factor.size() != rotary)
      f.fail("long_factor", fmt::format("has {} entries, the rotary dimension needs {}", r.long_factor.size(), rotary));
  } else if (type == "yarn") {
    r.type = type;
    r.factor = factor("factor", 1, true);
    r.original_max_position_embeddings = orig_max(true);
  } else {
    f.fail(type_key, fmt::format("'{}' is not supported (supported: linear, dynamic, llama3, longrope, su, yarn)",
                                 type));
  }
  return r;
}

}  // namespace

ModelConfig parse_hf_config(std::string_view config_json, std::string_view origin) {
  const Json j = parse_json<Json>(config_json, origin);
  if (!j.is_object()) throw Error(fmt::format("{}: must be a JSON object, got {}", origin, j.type_name()));
  Fields f(j, origin);
  ModelConfig c;

  const Json& archs = f.at("architectures");
  if (!archs.is_array() || archs.empty() || !archs[0].is_string())
    f.fail("architectures", fmt::format("must be a non-empty list of strings, got {}", json_brief(archs)));
  c.architecture = archs[0].get<std::string>();
  const ArchSpec& arch = find_arch(c.architecture, origin);
  c.model_type = f.string("model_type", arch.model_type);

  c.hidden_size = f.positive("hidden_size");
  c.intermediate_size = f.positive("intermediate_size");
  c.num_layers = f.positive("num_hidden_layers");
  c.num_heads = f.positive("num_attention_heads");
  c.num_kv_heads = f.positive("num_key_value_heads", c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    f.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", c.num_kv_heads,
                                              c.num_heads));
  if (f.has("head_dim")) {
    c.head_dim = f.positive("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      f.fail("num_attention_heads", fmt::format("{} does not divide hidden_size {} (and no head_dim is given)",
                                                c.num_heads, c.hidden_size));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  c.vocab_size = f.positive("vocab_size");
  // Defaults are those of the transformers config classes, for configs that omit keys.
  c.max_position_embeddings = f.positive("max_position_embeddings", arch.default_max_position_embeddings);
  c.rms_norm_eps = f.number("rms_norm_eps", arch.default_rms_norm_eps);
  if (!(c.rms_norm_eps > 0)) f.fail("rms_norm_eps", fmt::format("must be positive, got {}", c.rms_norm_eps));
  // transformers 5 moved rope_theta (and Phi's partial_rotary_factor) into
  // "rope_parameters"; a top-level key, as older configs have, wins.
  const bool rope_params = f.has("rope_parameters");
  if (rope_params && !f.at("rope_parameters").is_object())
    f.fail("rope_parameters", fmt::format("must be an object or null, got {}", f.at("rope_parameters").type_name()));
  const Fields rp(rope_params ? f.at("rope_parameters") : j, origin, "rope_parameters.");
  c.rope_theta = f.has("rope_theta") || !rope_params ? f.number("rope_theta", 10000.0f) : rp.number("rope_theta", 10000.0f);
  if (!(c.rope_theta > 0)) f.fail("rope_theta", fmt::format("must be positive, got {}", c.rope_theta));
  c.partial_rotary_factor = f.has("partial_rotary_factor") || !rope_params ? f.number("partial_rotary_factor", 1.0f)
                                                                          : rp.number("partial_rotary_factor", 1.0f);
  if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1))
    f.fail("partial_rotary_factor", fmt::format("must be in (0, 1], got {}", c.partial_rotary_factor));
  int rotary = int(std::lround(c.head_dim * c.partial_rotary_factor));
  if (rotary % 2 != 0 || std::fabs(c.head_dim * c.partial_rotary_factor - rotary) > 1e-3)
    f.fail("partial_rotary_factor", fmt::format("{} x head_dim {} is not an even whole number",
                                                c.partial_rotary_factor, c.head_dim));
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.attention_bias = arch.qkv_bias == BiasRule::FromConfig ? f.boolean("attention_bias", false)
                                                           : arch.qkv_bias == BiasRule::Always;
  c.hidden_act = f.string("hidden_act", "silu");
  if (c.hidden_act != "silu")
    f.fail("hidden_act", fmt::format("'{}' is not supported (only silu)", c.hidden_act));

  bool use_window = arch.sliding_window == WindowRule::BehindSwitch ? f.boolean("use_sliding_window", false) : true;
  c.sliding_window = use_window ? f.integer("sliding_window", 0) : 0;
  if (c.sliding_window < 0) f.fail("sliding_window", fmt::format("must not be negative, got {}", c.sliding_window));

  c.bos_token_id = f.token_id("bos_token_id");
  c.eos_token_ids = f.token_ids("eos_token_id");

  if (f.has("rope_scaling"))
    c.rope_scaling = parse_rope_scaling("rope_scaling", f, c, origin);
  else if (rope_params)
    c.rope_scaling = parse_rope_scaling("rope_parameters", f, c, origin);
  return c;
}

namespace io {

void apply_generation_config(std::string_view json, std::string_view origin, ModelConfig& config) {
  const Json j = parse_json<Json>(json, origin);
  if (!j.is_object()) throw Error(fmt::format("{}: must be a JSON object, got {}", origin, j.type_name()));
  Fields f(j, origin);
  if (f.has("bos_token_id")) config.bos_token_id = f.token_id("bos_token_id");
  if (f.has("eos_token_id")) config.eos_token_ids = f.token_ids("eos_token_id");
}

}  // namespace io

}  // namespace upg
