#include "model/weights.h"

#include <cmath>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "upg/core/error.h"

namespace upg {

const TensorView& WeightBinder::expect(const std::string& name, std::vector<int64_t> shape) {
  const TensorView& t = store_.get(name);
  if (t.shape != shape)
    throw Error(fmt::format("{}: tensor '{}' has shape [{}], expected [{}]", store_.source, name,
                            fmt::join(t.shape, ", "), fmt::join(shape, ", ")));
  return t;
}

const float* WeightBinder::vector(const std::string& name, int64_t n) {
  const TensorView& t = expect(name, {n});
  const float* v = t.as<float>();
  if (t.dtype != DType::F32) {
    // Norms and biases are tiny; converting them once keeps every kernel fp32-only here.
    auto* out = reinterpret_cast<float*>(store_.allocate(size_t(n) * sizeof(float)));
    if (t.dtype != DType::F16 && t.dtype != DType::BF16)
      throw Error(fmt::format("{}: tensor '{}' has unsupported dtype {} (a vector must be F32, F16 or BF16)",
                              store_.source, name, dtype_name(t.dtype)));
    convert_to_f32(t.dtype, t.data, out, n);
    v = out;
  }
  // A NaN in a norm, bias or int8 row scale makes every logit NaN: generation then ends
  // at once with empty output. These vectors are a few KB, so checking costs nothing.
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      throw Error(fmt::format("{}: tensor '{}' holds a non-finite value ({}) at index {}", store_.source, name, v[i], i));
  return v;
}

LinearWeight WeightBinder::linear_rows(const std::string& name, int64_t total_rows, int64_t cols, int64_t row0,
                                       int64_t rows, const std::string& bias_name) {
  if (auto it = compressed_.find(name); it != compressed_.end()) {
    const format::CompressedMatrix& m = it->second;
    if (m.rows != total_rows || m.cols != cols)
      throw Error(fmt::format("{}: tensor '{}' has shape [{}, {}], expected [{}, {}]", store_.source, name, m.rows,
                              m.cols, total_rows, cols));
    LinearWeight w;
    w.rows = rows;
    w.cols = cols;
    w.name = it->first.c_str();
    w.compressed = &m;
    if (row0 != 0 || rows != total_rows) w.compressed = &out_.slices.emplace_back(format::slice_rows(m, row0, rows));
    if (!bias_name.empty()) w.bias = vector(bias_name, total_rows) + row0;
    return w;
  }
  if (!store_.contains(name) && store_.contains(name + ".qweight")) {
    LinearWeight w = int8_rows(name, total_rows, cols, row0, rows);
    if (!bias_name.empty()) w.bias = vector(bias_name, total_rows) + row0;
    return w;
  }
  const TensorView& t = expect(name, {total_rows, cols});
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16 && !dtype_is_quantized(t.dtype))
    throw Error(fmt::format("{}: tensor '{}' has unsupported dtype {}", store_.source, name, dtype_name(t.dtype)));
  LinearWeight w;
  w.name = t.name.c_str();
  w.dtype = t.dtype;
  w.rows = rows;
  w.cols = cols;
  w.data = t.data + dtype_bytes(t.dtype, row0 * cols);
  if (!bias_name.empty()) w.bias = vector(bias_name, total_rows) + row0;
  return w;
}

LinearWeight WeightBinder::int8_rows(const std::string& name, int64_t total_rows, int64_t cols, int64_t row0,
                                     int64_t rows) {
  const TensorView& q = expect(name + ".qweight", {total_rows, cols});
  if (q.dtype != DType::I8)
    throw Error(fmt::format("{}: tensor '{}.qweight' has dtype {}, expected I8", store_.source, name,
                            dtype_name(q.dtype)));
  if (!store_.contains(name + ".scales"))
    throw Error(fmt::format("{}: missing tensor '{}.scales' for the int8 weight '{}.qweight'", store_.source, name,
                            name));
  LinearWeight w;
  w.name = q.name.c_str();
  w.dtype = DType::I8;
  w.rows = rows;
  w.cols = cols;
  w.data = q.data + row0 * cols;
  w.scales = vector(name + ".scales", total_rows) + row0;
  return w;
}

LinearWeight WeightBinder::linear(const std::string& name, int64_t rows, int64_t cols, const std::string& bias_name) {
  return linear_rows(name, rows, cols, 0, rows, bias_name);
}

namespace {

// Every projection of one layer, as row ranges of the layout's tensors (a tensor holding
// one projection is the range of all its rows).
void bind_layer(WeightBinder& b, const ArchSpec& arch, const std::string& p, LayerWeights& lw) {
  const ModelConfig& c = b.config();
  for (const LayerTensor& t : arch.layout) {
    const std::string stem = p + t.hf, bias = c.attention_bias && t.bias ? stem + ".bias" : std::string();
    const int64_t total = tensor_rows(c, t);
    int64_t row0 = 0;
    for (int i = 0; i < t.count; ++i) {
      const Proj proj = Proj(int(t.first) + i);
      const ProjShape s = proj_shape(c, proj);
      lw.*kProjections[int(proj)] = b.linear_rows(stem + ".weight", total, s.cols, row0, s.rows, bias);
      row0 += s.rows;
    }
  }
}

// Tensors of layers past the config's count were ignored without a word: a config that
// disagrees with its weights (a truncated block_count, a wrong num_hidden_layers).
void check_layer_count(const WeightStore& store, const auto& compressed, int num_layers) {
  constexpr std::string_view kPrefix = "model.layers.";
  auto check = [&](const std::string& name) {
    if (!name.starts_with(kPrefix)) return;
    int64_t layer = 0;
    size_t i = kPrefix.size();
    for (; i < name.size() && i < kPrefix.size() + 9 && name[i] >= '0' && name[i] <= '9'; ++i)
      layer = layer * 10 + (name[i] - '0');
    if (i > kPrefix.size() && layer >= num_layers)
      throw Error(fmt::format("{}: tensor '{}' belongs to layer {}, but the config has {} layers", store.source, name,
                              layer, num_layers));
  };
  for (const auto& [name, t] : store.all()) check(name);
  for (const auto& [name, m] : compressed) check(name);
}

}  // namespace

ModelWeights bind_weights(ModelSource& src) {
  const ModelConfig& cfg = src.config;
  const WeightStore& store = src.weights;
  const ArchSpec& arch = find_arch(cfg.architecture);
  if (arch.qkv_bias == BiasRule::Always && !cfg.attention_bias)
    throw Error(fmt::format("{}: attention_bias must be true (the architecture always has q/k/v biases)",
                            arch.hf_class));
  ModelWeights w;
  WeightBinder b(src, w);
  w.embed = b.linear("model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size);
  // Tied models (SmolLM2) reuse the embedding as LM head; some tied checkpoints still
  // ship an lm_head copy, which is then used as is.
  w.lm_head = b.has("lm_head.weight") ? b.linear("lm_head.weight", cfg.vocab_size, cfg.hidden_size) : w.embed;
  if (!b.has("lm_head.weight") && !cfg.tie_word_embeddings)
    throw Error(fmt::format("{}: missing tensor 'lm_head.weight' (tie_word_embeddings is false)", store.source));
  check_layer_count(store, src.compressed, cfg.num_layers);
  w.final_norm = b.vector("model.norm.weight", cfg.hidden_size);
  w.layers.resize(size_t(cfg.num_layers));
  for (int l = 0; l < cfg.num_layers; ++l) {
    LayerWeights& lw = w.layers[size_t(l)];
    std::string p = fmt::format("model.layers.{}.", l);
    lw.attn_norm = b.vector(p + "input_layernorm.weight", cfg.hidden_size);
    lw.mlp_norm = b.vector(p + "post_attention_layernorm.weight", cfg.hidden_size);
    bind_layer(b, arch, p, lw);
  }
  return w;
}

}  // namespace upg
