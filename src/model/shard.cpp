#include "model/shard.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

int64_t column_alignment(const LinearWeight& w) {
  return w.compressed ? format::column_alignment(*w.compressed) : dtype_block_elems(w.dtype);
}

namespace {

// Even offsets of `total` units over n ranks, the first total % n ranks one more.
std::vector<int64_t> even_split(int64_t total, int n) {
  std::vector<int64_t> x(size_t(n) + 1, 0);
  for (int r = 0; r < n; ++r) x[size_t(r) + 1] = x[size_t(r)] + total / n + (r < total % n ? 1 : 0);
  return x;
}

LinearWeight empty_like(const LinearWeight& w, int64_t rows, int64_t cols) {
  LinearWeight e;
  e.dtype = w.dtype;
  e.rows = rows;
  e.cols = cols;
  e.name = w.name;
  return e;
}

// Dense bytes of rows [r0, r0 + rows), columns [c0, c0 + cols), then `zero_rows` zero rows.
const std::byte* copy_dense(const LinearWeight& w, int64_t r0, int64_t rows, int64_t c0, int64_t cols,
                            int64_t zero_rows, ShardStore& store) {
  const size_t row_bytes = dtype_bytes(w.dtype, w.cols), off = dtype_bytes(w.dtype, c0), len = dtype_bytes(w.dtype, cols);
  AlignedVector<std::byte>& out = store.bytes.emplace_back(len * size_t(rows + zero_rows), std::byte{0});
  const auto* src = static_cast<const std::byte*>(w.data);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out.data() + size_t(r) * len, src + size_t(r0 + r) * row_bytes + off, len);
  return out.data();
}

}  // namespace

LinearWeight linear_rows_of(const LinearWeight& w, int64_t r0, int64_t n, ModelWeights& views) {
  if (r0 < 0 || n < 0 || r0 + n > w.rows)
    throw Error(fmt::format("tensor '{}': rows [{}, {}) outside its {}", w.name, r0, r0 + n, w.rows));
  LinearWeight s = w;
  s.rows = n;
  if (w.bias) s.bias = w.bias + r0;
  if (w.compressed) {
    s.compressed = &views.slices.emplace_back(format::slice_rows(*w.compressed, r0, n));
  } else {
    s.data = static_cast<const std::byte*>(w.data) + dtype_bytes(w.dtype, r0 * w.cols);
    if (w.scales) s.scales = w.scales + r0;
  }
  return s;
}

LinearWeight linear_cols_of(const LinearWeight& w, int64_t c0, int64_t n, bool keep_bias, ShardStore& store) {
  if (c0 < 0 || n < 0 || c0 + n > w.cols)
    throw Error(fmt::format("tensor '{}': columns [{}, {}) outside its {}", w.name, c0, c0 + n, w.cols));
  if (n == 0) return empty_like(w, w.rows, 0);
  const int64_t a = column_alignment(w);
  if (c0 % a != 0 || (n % a != 0 && c0 + n != w.cols))
    throw Error(fmt::format("tensor '{}': cannot split its columns at [{}, {}): its {} blocks are {} columns wide",
                            w.name, c0, c0 + n,
                            w.compressed ? format::layout_name(w.compressed->layout) : dtype_name(w.dtype), a));
  LinearWeight s = w;
  s.cols = n;
  s.bias = keep_bias ? w.bias : nullptr;
  if (w.compressed) {
    const format::CompressedData& d =
        store.compressed.emplace_back(format::copy_region(*w.compressed, 0, w.rows, c0, n, 0, w.name));
    s.compressed = &store.views.emplace_back(d.view());
  } else {
    s.data = copy_dense(w, 0, w.rows, c0, n, 0, store);
  }
  return s;
}

LinearWeight rows_with_zero_row(const LinearWeight& w, int64_t r0, int64_t n, ShardStore& store) {
  if (r0 < 0 || n < 0 || r0 + n > w.rows)
    throw Error(fmt::format("tensor '{}': rows [{}, {}) outside its {}", w.name, r0, r0 + n, w.rows));
  LinearWeight s = w;
  s.rows = n + 1;
  s.bias = nullptr;  // an embedding has none
  if (w.compressed) {
    const format::CompressedData& d =
        store.compressed.emplace_back(format::copy_region(*w.compressed, r0, n, 0, w.cols, 1, w.name));
    s.compressed = &store.views.emplace_back(d.view());
    return s;
  }
  // All-zero bytes are the weight 0 in every dense and GGUF block type (a block's scale 0).
  s.data = copy_dense(w, r0, n, 0, w.cols, 1, store);
  if (w.scales) {
    std::vector<float>& sc = store.floats.emplace_back(w.scales + r0, w.scales + r0 + n);
    sc.push_back(0.0f);
    s.scales = sc.data();
  }
  return s;
}

ShardPlan plan_shards(const ModelConfig& cfg, const ModelWeights& w, int n) {
  if (n < 1) throw ParamError("tensor_parallel", fmt::format("must be at least 1, got {}", n));
  ShardPlan p;
  p.n_ranks = n;
  for (int64_t g : even_split(cfg.num_kv_heads, n)) p.kv_heads.push_back(int(g));
  p.vocab = even_split(cfg.vocab_size, n);
  // o_proj's columns split where the heads of a rank's KV groups end.
  const int64_t group_cols = int64_t(cfg.num_heads / cfg.num_kv_heads) * cfg.head_dim;
  for (const LayerWeights& l : w.layers) {
    const int64_t a = column_alignment(l.o);
    for (int r = 1; r < n; ++r) {
      const int64_t at = p.kv_heads[size_t(r)] * group_cols;
      if (at % a != 0 && at != l.o.cols)
        throw Error(fmt::format("tensor '{}': {} ranks split its columns at {} (the heads of {} KV heads), off its "
                                "blocks of {} columns: choose another tensor parallel size",
                                l.o.name, n, at, p.kv_heads[size_t(r)], a));
    }
  }
  // The intermediate dimension splits on every down_proj's alignment, in whole units.
  int64_t align = 32;
  for (const LayerWeights& l : w.layers) align = std::lcm(align, column_alignment(l.down));
  const int64_t inter = cfg.intermediate_size, units = (inter + align - 1) / align;
  for (int64_t u : even_split(units, n)) p.inter.push_back(std::min(inter, u * align));
  return p;
}

std::unique_ptr<Shard> make_shard(const ModelConfig& cfg, const ModelWeights& full, const ShardPlan& p, int rank) {
  auto s = std::make_unique<Shard>();
  const size_t r = size_t(rank);
  const int64_t hd = cfg.head_dim, per_group = cfg.num_heads / cfg.num_kv_heads;
  const int64_t g0 = p.kv_heads[r], groups = p.kv_heads[r + 1] - g0;
  const int64_t i0 = p.inter[r], inter = p.inter[r + 1] - i0;
  s->config = cfg;
  s->config.num_kv_heads = int(groups);
  s->config.num_heads = int(groups * per_group);
  s->config.intermediate_size = int(inter);
  s->vocab0 = p.vocab[r];
  s->vocab_rows = p.vocab[r + 1] - s->vocab0;
  ModelWeights& w = s->weights;
  w.final_norm = full.final_norm;
  w.embed = rows_with_zero_row(full.embed, s->vocab0, s->vocab_rows, s->store);
  w.lm_head = linear_rows_of(full.lm_head, s->vocab0, s->vocab_rows, w);
  w.layers.resize(full.layers.size());
  const bool first = rank == 0;  // adds the biases of the column-split weights
  for (size_t l = 0; l < full.layers.size(); ++l) {
    const LayerWeights& f = full.layers[l];
    LayerWeights& o = w.layers[l];
    o.attn_norm = f.attn_norm;
    o.mlp_norm = f.mlp_norm;
    o.q = linear_rows_of(f.q, g0 * per_group * hd, groups * per_group * hd, w);
    o.k = linear_rows_of(f.k, g0 * hd, groups * hd, w);
    o.v = linear_rows_of(f.v, g0 * hd, groups * hd, w);
    o.o = linear_cols_of(f.o, g0 * per_group * hd, groups * per_group * hd, first, s->store);
    o.gate = linear_rows_of(f.gate, i0, inter, w);
    o.up = linear_rows_of(f.up, i0, inter, w);
    o.down = linear_cols_of(f.down, i0, inter, first, s->store);
  }
  return s;
}

}  // namespace upg
