#include "io/gguf-names.h"

#include <charconv>

#include <fmt/format.h>

#include "upg/arch/arch-registry.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

struct Part {
  std::string_view gguf;
  std::string_view hf;
};
// Per-layer tensors other than the projections (blk.N.<gguf> -> model.layers.N.<hf>);
// the projections' names are the architecture's (its layout in upg/arch/arch-registry.h).
constexpr Part kLayerParts[] = {
    {"attn_norm", "input_layernorm"},
    {"attn_q_norm", "self_attn.q_norm"},
    {"attn_k_norm", "self_attn.k_norm"},
    {"ffn_norm", "post_attention_layernorm"},
};

constexpr Part kGlobal[] = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
};

// Splits "stem.weight" / "stem.bias" into stem and suffix.
bool split_suffix(std::string_view name, std::string_view& stem, std::string_view& suffix) {
  for (std::string_view s : {".weight", ".bias"}) {
    if (name.size() > s.size() && name.substr(name.size() - s.size()) == s) {
      stem = name.substr(0, name.size() - s.size());
      suffix = s;
      return true;
    }
  }
  return false;
}

std::vector<int64_t> rows_map(int64_t rows, int64_t n_head, bool to_hf) {
  if (n_head <= 0 || rows <= 0 || rows % (2 * n_head) != 0)
    throw Error(fmt::format("{} rows cannot be split into {} heads of an even size", rows, n_head));
  const int64_t hd = rows / n_head, half_hd = hd / 2;
  std::vector<int64_t> map(size_t(rows), 0);
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t i = 0; i < half_hd; ++i) {
        int64_t hf = h * hd + half * half_hd + i;
        int64_t gg = h * hd + 2 * i + half;
        if (to_hf)
          map[size_t(hf)] = gg;
        else
          map[size_t(gg)] = hf;
      }
  return map;
}

}  // namespace

std::optional<std::string> gguf_to_hf_name(std::string_view name, std::string_view arch) {
  if (name == "rope_freqs.weight" || name.starts_with("rope_factors_")) return std::nullopt;
  std::string_view stem, suffix;
  if (!split_suffix(name, stem, suffix)) return std::string(name);
  for (auto& g : kGlobal)
    if (stem == g.gguf) return fmt::format("{}{}", g.hf, suffix);
  if (!stem.starts_with("blk.")) return std::string(name);
  std::string_view rest = stem.substr(4);
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::string(name);
  int layer = 0;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + dot, layer);
  if (ec != std::errc() || p != rest.data() + dot) return std::string(name);
  std::string_view part = rest.substr(dot + 1);
  if (const ArchSpec* a = arch_by_gguf(arch))
    for (const LayerTensor& t : a->layout)
      if (part == t.gguf) return fmt::format("model.layers.{}.{}{}", layer, t.hf, suffix);
  for (auto& lp : kLayerParts)
    if (part == lp.gguf) return fmt::format("model.layers.{}.{}{}", layer, lp.hf, suffix);
  return std::string(name);
}

std::vector<int64_t> qk_unpermute_rows(int64_t rows, int64_t n_head) { return rows_map(rows, n_head, true); }
std::vector<int64_t> qk_permute_rows(int64_t rows, int64_t n_head) { return rows_map(rows, n_head, false); }

}  // namespace upg::io
