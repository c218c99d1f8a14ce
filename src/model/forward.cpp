#include "model/forward.h"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

ForwardPass::ForwardPass(const ModelConfig& cfg, const ModelWeights& w, Backend& backend, int context_length,
                         int max_sequences, int max_ubatch, DType kv_type, int kv_block_size, int kv_blocks)
    : cfg_(cfg), w_(w), be_(backend), ctx_(context_length), max_seqs_(max_sequences), max_ubatch_(max_ubatch),
      block_size_(kv_block_size), n_blocks_(kv_blocks), rope_(build_rope(cfg, context_length)) {
  if (kv_block_size <= 0) throw ParamError("kv_block_size", fmt::format("must be positive, got {}", kv_block_size));
  const int64_t contiguous = int64_t(max_sequences) * blocks_per_sequence();
  if (kv_blocks < 0 || contiguous > INT32_MAX)
    throw ParamError("kv_blocks", fmt::format("{} blocks of {} tokens", kv_blocks, kv_block_size));
  if (kv_blocks == 0) n_blocks_ = int(contiguous);
  const size_t U = size_t(max_ubatch), hidden = size_t(cfg.hidden_size),
               qd = size_t(cfg.num_heads) * cfg.head_dim, kvd = size_t(cfg.num_kv_heads) * cfg.head_dim,
               inter = size_t(cfg.intermediate_size);
  x_.resize(U * hidden);
  xb_.resize(U * hidden);
  q_.resize(U * qd);
  k_.resize(U * kvd);
  v_.resize(U * kvd);
  att_.resize(U * qd);
  tmp_.resize(U * hidden);
  gate_.resize(U * inter);
  up_.resize(U * inter);
  last_.resize(U * hidden);
  positions_.resize(U);
  slots_.resize(U);
  block_begin_.resize(U);
  // A pool smaller than the contiguous layout serves only batches with block tables.
  default_tables_.resize(size_t(std::min<int64_t>(contiguous, n_blocks_)));
  for (size_t i = 0; i < default_tables_.size(); ++i) default_tables_[i] = int32_t(i);
  be_.kv_alloc(cfg.num_layers, n_blocks_, block_size_, cfg.num_kv_heads, cfg.head_dim, kv_type);
  // Repacking (or uploading) every weight now keeps that cost out of the first token.
  std::vector<const LinearWeight*> all = {&w.lm_head};
  for (const LayerWeights& l : w.layers)
    for (auto proj : kProjections) all.push_back(&(l.*proj));
  be_.prepare(std::span<const LinearWeight* const>(all));
}

void ForwardPass::validate(const Batch& b) const {
  if (b.tokens.size() != b.positions.size() || b.tokens.size() != b.seq_ids.size() ||
      b.tokens.size() != b.want_logits.size())
    throw Error("batch: tokens, positions, seq_ids and want_logits differ in length");
  const bool paged = !b.tables.empty();
  if (paged && b.tables.size() != b.size()) throw Error("batch: some tokens have a block table and some do not");
  if (paged) {
    // Every table lies inside block_ids and names blocks of the pool, so no token reads
    // or writes outside the cache whatever the caller sends.
    const size_t n_tables = b.table_offsets.empty() ? 0 : b.table_offsets.size() - 1;
    for (size_t i = 0; i < n_tables; ++i)
      if (b.table_offsets[i] < 0 || b.table_offsets[i] > b.table_offsets[i + 1] ||
          size_t(b.table_offsets[i + 1]) > b.block_ids.size())
        throw Error(fmt::format("batch: block table {} lies outside block_ids", i));
    for (int32_t id : b.block_ids)
      if (id < 0 || id >= n_blocks_)
        throw Error(fmt::format("batch: block {} outside the KV cache's {} blocks", id, n_blocks_));
    for (size_t i = 0; i < b.size(); ++i)
      if (b.tables[i] < 0 || size_t(b.tables[i]) >= n_tables)
        throw Error(fmt::format("batch: token {} names block table {} of {}", i, b.tables[i], n_tables));
  } else if (default_tables_.size() < size_t(max_seqs_) * size_t(blocks_per_sequence())) {
    throw Error("batch: the KV cache is paged and smaller than max_sequences contexts; the batch needs block tables");
  }
  for (size_t i = 0; i < b.size(); ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= cfg_.vocab_size)
      throw Error(fmt::format("batch: token id {} outside the vocabulary of {}", b.tokens[i], cfg_.vocab_size));
    if (b.positions[i] < 0 || b.positions[i] >= ctx_)
      throw Error(fmt::format("context full: position {} is past the context length {}", b.positions[i], ctx_));
    if (paged) {
      const int32_t t = b.tables[i], blocks = b.table_offsets[size_t(t) + 1] - b.table_offsets[size_t(t)];
      if (b.positions[i] / block_size_ >= blocks)
        throw Error(fmt::format("batch: position {} is past its block table of {} blocks", b.positions[i], blocks));
    } else if (b.seq_ids[i] < 0 || b.seq_ids[i] >= max_seqs_) {
      throw Error(fmt::format("batch: sequence {} outside the {} KV cache slots", b.seq_ids[i], max_seqs_));
    }
  }
}

std::span<const float> ForwardPass::run(const Batch& b) {
  validate(b);
  const size_t vocab = size_t(cfg_.vocab_size);
  const size_t wanted = size_t(std::count(b.want_logits.begin(), b.want_logits.end(), 1));
  if (logits_.size() < wanted * vocab) logits_.resize(wanted * vocab);
  n_wanted_ = 0;
  for (size_t begin = 0; begin < b.size(); begin += size_t(max_ubatch_))
    run_ubatch(b, begin, std::min(b.size(), begin + size_t(max_ubatch_)));
  return {logits_.data(), wanted * vocab};
}

void ForwardPass::matmul(const LinearWeight& w, const float* x, int64_t n, float* y) {
  if (observer_) observer_(w, x, n);
  be_.matmul(w, x, n, y);
}

void ForwardPass::matmul_same_input(std::initializer_list<const LinearWeight*> ws, const float* x, int64_t n,
                                    std::initializer_list<float*> ys) {
  if (observer_)
    for (const LinearWeight* w : ws) observer_(*w, x, n);
  be_.matmul_same_input(std::span<const LinearWeight* const>(ws.begin(), ws.size()), x, n,
                        std::span<float* const>(ys.begin(), ys.size()));
}

AttentionBatch ForwardPass::setup_ubatch(const Batch& b, size_t begin, size_t end) {
  const ModelConfig& c = cfg_;
  const int64_t n = int64_t(end - begin);
  const bool paged = !b.tables.empty();
  const std::vector<int32_t>& ids = paged ? b.block_ids : default_tables_;
  for (int64_t t = 0; t < n; ++t) {
    const size_t i = begin + size_t(t);
    const int32_t pos = b.positions[i];
    positions_[size_t(t)] = pos;
    const int32_t first = paged ? b.table_offsets[size_t(b.tables[i])] : b.seq_ids[i] * blocks_per_sequence();
    block_begin_[size_t(t)] = first;
    slots_[size_t(t)] = int64_t(ids[size_t(first + pos / block_size_)]) * block_size_ + pos % block_size_;
  }
  return AttentionBatch{std::span<const int32_t>(positions_.data(), size_t(n)),
                        std::span<const int32_t>(ids),
                        std::span<const int32_t>(block_begin_.data(), size_t(n)),
                        block_size_,
                        c.num_heads,
                        c.num_kv_heads,
                        c.head_dim,
                        c.sliding_window};
}

void ForwardPass::layer(int l, int64_t n, float* x, const AttentionBatch& ab) {
  const ModelConfig& c = cfg_;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size;
  const std::span<const int32_t> pos = ab.positions;
  const std::span<const int64_t> slots(slots_.data(), size_t(n));
  const LayerWeights& lw = w_.layers[size_t(l)];
  be_.rmsnorm(x, lw.attn_norm, xb_.data(), hidden, n, c.rms_norm_eps);
  matmul_same_input({&lw.q, &lw.k, &lw.v}, xb_.data(), n, {q_.data(), k_.data(), v_.data()});
  be_.rope(q_.data(), pos, c.num_heads, rope_.table);
  be_.rope(k_.data(), pos, c.num_kv_heads, rope_.table);
  be_.kv_store(l, slots, k_.data(), v_.data());
  be_.attention(l, q_.data(), ab, att_.data());
  matmul(lw.o, att_.data(), n, tmp_.data());
  be_.add(x, tmp_.data(), n * hidden);

  be_.rmsnorm(x, lw.mlp_norm, xb_.data(), hidden, n, c.rms_norm_eps);
  matmul_same_input({&lw.gate, &lw.up}, xb_.data(), n, {gate_.data(), up_.data()});
  be_.silu_mul(gate_.data(), up_.data(), gate_.data(), n * inter);
  matmul(lw.down, gate_.data(), n, tmp_.data());
  be_.add(x, tmp_.data(), n * hidden);
}

void ForwardPass::embed(const Batch& b, float* x) {
  validate(b);
  be_.embed(w_.embed, std::span<const int32_t>(b.tokens.data(), b.size()), x);
}

void ForwardPass::run_layer(int l, const Batch& b, float* x) {
  if (l < 0 || l >= cfg_.num_layers)
    throw Error(fmt::format("run_layer: layer {} outside the model's {} layers", l, cfg_.num_layers));
  validate(b);
  for (size_t begin = 0; begin < b.size(); begin += size_t(max_ubatch_)) {
    const size_t end = std::min(b.size(), begin + size_t(max_ubatch_));
    const AttentionBatch ab = setup_ubatch(b, begin, end);
    layer(l, int64_t(end - begin), x + begin * size_t(cfg_.hidden_size), ab);
  }
}

void ForwardPass::run_ubatch(const Batch& b, size_t begin, size_t end) {
  const ModelConfig& c = cfg_;
  const int64_t n = int64_t(end - begin);
  const int64_t hidden = c.hidden_size;
  const AttentionBatch ab = setup_ubatch(b, begin, end);
  be_.embed(w_.embed, std::span<const int32_t>(b.tokens.data() + begin, size_t(n)), x_.data());
  for (int l = 0; l < c.num_layers; ++l) layer(l, n, x_.data(), ab);
  // Only the rows that want logits go through the final norm and the LM head, which is
  // the single largest matrix of a small model.
  int64_t m = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (!b.want_logits[begin + size_t(t)]) continue;
    std::copy_n(x_.data() + t * hidden, hidden, last_.data() + m * hidden);
    ++m;
  }
  if (m == 0) return;
  be_.rmsnorm(last_.data(), w_.final_norm, last_.data(), hidden, m, c.rms_norm_eps);
  matmul(w_.lm_head, last_.data(), m, logits_.data() + n_wanted_ * size_t(c.vocab_size));
  n_wanted_ += size_t(m);
}

}  // namespace upg
