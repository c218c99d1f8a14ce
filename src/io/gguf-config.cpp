#include "io/gguf-config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include <fmt/format.h>

#include "upg/arch/arch-registry.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

int positive_int(const GgufFile& g, const std::string& key) {
  uint32_t v = g.get_u32(key);
  if (v == 0 || v > uint32_t(std::numeric_limits<int>::max()))
    throw Error(fmt::format("{}: metadata key '{}': value {} is out of range", g.path(), key, v));
  return int(v);
}

std::vector<float> tensor_f32(const GgufFile& g, const GgufTensorInfo& t) {
  if (dtype_is_quantized(t.dtype))
    throw Error(fmt::format("{}: tensor '{}': expected F32/F16/BF16, found {}", g.path(), t.name, dtype_name(t.dtype)));
  std::vector<float> v(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, v.data(), t.numel());
  return v;
}

// llama.cpp's converter stores Llama-3 rope scaling only as the per-frequency factors in
// rope_freqs.weight. Recover the parameters by assuming Meta's published low/high/original
// values and checking that they reproduce every factor; anything else is refused.
void llama3_from_rope_freqs(const GgufFile& g, const GgufTensorInfo& t, const ModelConfig& c, int rope_dims,
                            RopeScaling& rs) {
  std::vector<float> f = tensor_f32(g, t);
  if (int64_t(f.size()) != rope_dims / 2)
    throw Error(fmt::format("{}: tensor '{}': {} factors for {} rotary dims (expected {})", g.path(), t.name,
                            f.size(), rope_dims, rope_dims / 2));
  const double factor = *std::max_element(f.begin(), f.end());
  const double low = 1.0, high = 4.0, orig = 8192.0;
  for (size_t i = 0; i < f.size(); ++i) {
    double freq = 1.0 / std::pow(double(c.rope_theta), double(2 * i) / rope_dims);
    double wavelen = 2 * std::numbers::pi / freq;
    double want;
    if (wavelen < orig / high) {
      want = 1.0;
    } else if (wavelen > orig / low) {
      want = factor;
    } else {
      double smooth = (orig / wavelen - low) / (high - low);
      want = 1.0 / ((1 - smooth) / factor + smooth);
    }
    if (std::abs(f[i] - want) > 1e-3 * want)
      throw Error(fmt::format("{}: tensor '{}': rope frequency factors do not match llama3 rope scaling "
                              "(factor {}, low 1, high 4, original 8192); unsupported rope scaling",
                              g.path(), t.name, factor));
  }
  rs.type = "llama3";
  rs.factor = float(factor);
  rs.low_freq_factor = float(low);
  rs.high_freq_factor = float(high);
  rs.original_max_position_embeddings = int(orig);
}

void rope_scaling(const GgufFile& g, const std::string& arch, const ArchSpec& spec, ModelConfig& c, int rope_dims) {
  RopeScaling& rs = c.rope_scaling;
  const std::string key = arch + ".rope.scaling.type";
  std::string type = g.opt_string(key).value_or("none");
  const std::string orig_key = arch + ".rope.scaling.original_context_length";
  if (type == "linear" || type == "yarn") {
    rs.type = type;
    rs.factor = g.get_f32(arch + ".rope.scaling.factor");
    if (!(rs.factor >= 1.0f) || !std::isfinite(rs.factor))
      throw Error(fmt::format("{}: metadata key '{}.rope.scaling.factor': {} is not a finite value >= 1", g.path(),
                              arch, rs.factor));
    if (auto o = g.opt_u32(orig_key)) rs.original_max_position_embeddings = int(*o);
  } else if (type != "none") {
    throw Error(fmt::format("{}: metadata key '{}': unsupported rope scaling type '{}'", g.path(), key, type));
  }

  const GgufTensorInfo* freqs = g.find_tensor("rope_freqs.weight");
  const GgufTensorInfo* lf = g.find_tensor("rope_factors_long.weight");
  const GgufTensorInfo* sf = g.find_tensor("rope_factors_short.weight");
  if ((freqs || lf || sf) && rs.type != "none")
    throw Error(fmt::format("{}: both '{}' = '{}' and rope factor tensors are present; unsupported", g.path(), key,
                            rs.type));
  if (freqs) {
    if (!spec.gguf_rope_freqs)
      throw Error(fmt::format("{}: tensor 'rope_freqs.weight': unsupported for architecture '{}'", g.path(), arch));
    llama3_from_rope_freqs(g, *freqs, c, rope_dims, rs);
  } else if (lf || sf) {
    if (!lf || !sf)
      throw Error(fmt::format("{}: tensor '{}' is present without '{}'", g.path(),
                              lf ? "rope_factors_long.weight" : "rope_factors_short.weight",
                              lf ? "rope_factors_short.weight" : "rope_factors_long.weight"));
    rs.type = "longrope";
    rs.long_factor = tensor_f32(g, *lf);
    rs.short_factor = tensor_f32(g, *sf);
    for (auto* v : {&rs.long_factor, &rs.short_factor})
      if (int64_t(v->size()) != rope_dims / 2)
        throw Error(fmt::format("{}: rope factor tensors hold {} values for {} rotary dims (expected {})", g.path(),
                                v->size(), rope_dims, rope_dims / 2));
    rs.original_max_position_embeddings = int(g.opt_u32(orig_key).value_or(uint32_t(c.max_position_embeddings)));
    if (rs.original_max_position_embeddings <= 0)
      throw Error(fmt::format("{}: metadata key '{}' must be positive", g.path(), orig_key));
    rs.factor = float(c.max_position_embeddings) / float(rs.original_max_position_embeddings);
  }
}

}  // namespace

ModelConfig gguf_model_config(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture");
  const ArchSpec& a = find_gguf_arch(arch, fmt::format("{}: metadata key 'general.architecture'", g.path()));

  ModelConfig c;
  c.architecture = a.hf_class;
  c.model_type = a.model_type;
  c.attention_bias = a.qkv_bias == BiasRule::Always;  // GGUF has no key for it
  const std::string p = arch + ".";
  c.hidden_size = positive_int(g, p + "embedding_length");
  c.num_layers = positive_int(g, p + "block_count");
  c.intermediate_size = positive_int(g, p + "feed_forward_length");
  c.max_position_embeddings = positive_int(g, p + "context_length");
  c.num_heads = positive_int(g, p + "attention.head_count");
  c.num_kv_heads = g.has(p + "attention.head_count_kv") ? positive_int(g, p + "attention.head_count_kv") : c.num_heads;
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(fmt::format("{}: metadata key '{}attention.head_count_kv': {} does not divide head_count {}", g.path(),
                            p, c.num_kv_heads, c.num_heads));
  if (g.has(p + "attention.key_length")) {
    c.head_dim = positive_int(g, p + "attention.key_length");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      throw Error(fmt::format("{}: metadata key '{}embedding_length': {} is not a multiple of head_count {}", g.path(),
                              p, c.hidden_size, c.num_heads));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  c.rms_norm_eps = g.get_f32(p + "attention.layer_norm_rms_epsilon");
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps))
    throw Error(fmt::format("{}: metadata key '{}attention.layer_norm_rms_epsilon': {} is not positive", g.path(), p,
                            c.rms_norm_eps));
  c.rope_theta = g.opt_f32(p + "rope.freq_base").value_or(10000.0f);
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta))
    throw Error(fmt::format("{}: metadata key '{}rope.freq_base': {} is not positive", g.path(), p, c.rope_theta));
  int rope_dims = c.head_dim;
  if (g.has(p + "rope.dimension_count")) {
    rope_dims = positive_int(g, p + "rope.dimension_count");
    if (rope_dims > c.head_dim || rope_dims % 2 != 0)
      throw Error(fmt::format("{}: metadata key '{}rope.dimension_count': {} is odd or exceeds head_dim {}", g.path(), p,
                              rope_dims, c.head_dim));
    c.partial_rotary_factor = float(rope_dims) / float(c.head_dim);
  }
  if (g.has(p + "attention.sliding_window")) {
    // 0xFFFFFFFF read as int was -1, "no window", where the HF path rejects it.
    const uint32_t w = g.get_u32(p + "attention.sliding_window");
    if (w > uint32_t(std::numeric_limits<int32_t>::max()))
      throw Error(fmt::format("{}: metadata key '{}attention.sliding_window': {} is out of range", g.path(), p, w));
    c.sliding_window = int(w);
  }

  if (g.has(p + "vocab_size")) {
    c.vocab_size = positive_int(g, p + "vocab_size");
  } else if (g.has("tokenizer.ggml.tokens")) {
    c.vocab_size = int(g.get_array("tokenizer.ggml.tokens").size());
  } else if (const GgufTensorInfo* e = g.find_tensor("token_embd.weight"); e && e->ne.size() == 2) {
    c.vocab_size = int(e->ne[1]);
  } else {
    throw Error(fmt::format("{}: cannot tell the vocabulary size: no '{}vocab_size', 'tokenizer.ggml.tokens' or "
                            "2-D 'token_embd.weight'",
                            g.path(), p));
  }
  c.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  if (auto b = g.opt_i32("tokenizer.ggml.bos_token_id")) c.bos_token_id = int(*b);
  if (auto e = g.opt_i32("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {int(*e)};
  rope_scaling(g, arch, a, c, rope_dims);
  return c;
}

}  // namespace upg::io
