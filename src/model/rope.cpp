#include "model/rope.h"

#include <cmath>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

namespace {

// Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, a smooth blend
// between (transformers' _compute_llama3_parameters).
void apply_llama3(std::vector<float>& inv, const RopeScaling& s) {
  const float old_ctx = float(s.original_max_position_embeddings);
  const float low_wavelen = old_ctx / s.low_freq_factor;
  const float high_wavelen = old_ctx / s.high_freq_factor;
  for (float& f : inv) {
    const float wavelen = 2.0f * float(M_PI) / f;
    if (wavelen > low_wavelen) {
      f = f / s.factor;
    } else if (wavelen >= high_wavelen) {
      const float smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = (1.0f - smooth) * f / s.factor + smooth * f;
    }
  }
}

}  // namespace

RopeCache build_rope(const ModelConfig& cfg, int max_positions) {
  RopeCache rc;
  const int rotary_dim = int(float(cfg.head_dim) * cfg.partial_rotary_factor);
  if (rotary_dim <= 0 || rotary_dim % 2 != 0 || rotary_dim > cfg.head_dim)
    throw Error(fmt::format("config: partial_rotary_factor {} gives rotary dim {} for head_dim {}",
                            cfg.partial_rotary_factor, rotary_dim, cfg.head_dim));
  const int half = rotary_dim / 2;
  rc.inv_freq.resize(size_t(half));
  for (int i = 0; i < half; ++i)
    rc.inv_freq[size_t(i)] = 1.0f / std::pow(cfg.rope_theta, float(2 * i) / float(rotary_dim));

  const RopeScaling& s = cfg.rope_scaling;
  float attn_factor = 1.0f;
  if (s.type == "none" || s.type.empty()) {
  } else if (s.type == "linear") {
    for (float& f : rc.inv_freq) f /= s.factor;
  } else if (s.type == "llama3") {
    apply_llama3(rc.inv_freq, s);
  } else if (s.type == "longrope") {
    // Phi-3: per-dimension rescale factors. transformers switches to long_factor once the
    // sequence outgrows the original context; we choose once, by the context we allocate.
    const int orig = s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings
                                                            : cfg.max_position_embeddings;
    const auto& ext = max_positions > orig ? s.long_factor : s.short_factor;
    if (int(ext.size()) != half)
      throw Error(fmt::format("config: rope_scaling longrope factors have {} entries, expected {}", ext.size(), half));
    for (int i = 0; i < half; ++i) rc.inv_freq[size_t(i)] /= ext[size_t(i)];
    const float scale = float(cfg.max_position_embeddings) / float(orig);
    if (scale > 1.0f) attn_factor = std::sqrt(1.0f + std::log(scale) / std::log(float(orig)));
  } else {
    throw Error(fmt::format("config: rope_scaling type '{}' is not supported (supported: none, linear, llama3, longrope)",
                            s.type));
  }

  rc.cos.resize(size_t(max_positions) * size_t(half));
  rc.sin.resize(rc.cos.size());
  for (int p = 0; p < max_positions; ++p) {
    for (int i = 0; i < half; ++i) {
      const float angle = float(p) * rc.inv_freq[size_t(i)];  // fp32 product, as torch does
      rc.cos[size_t(p) * half + i] = float(std::cos(double(angle))) * attn_factor;
      rc.sin[size_t(p) * half + i] = float(std::sin(double(angle))) * attn_factor;
    }
  }
  rc.table = RopeTable{cfg.head_dim, rotary_dim, max_positions, rc.cos.data(), rc.sin.data(), cfg.rope_interleaved};
  return rc;
}

}  // namespace upg
