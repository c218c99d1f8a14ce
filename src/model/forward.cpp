#include "model/forward.h"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

ForwardPass::ForwardPass(const ModelConfig& cfg, const ModelWeights& w, Backend& backend, int context_length,
                         int max_sequences, int max_ubatch, DType kv_type, int kv_block_size, int kv_blocks,
                         RankContext tp)
    : cfg_(cfg), w_(w), be_(backend), ctx_(context_length), max_seqs_(max_sequences), max_ubatch_(max_ubatch),
      block_size_(kv_block_size), n_blocks_(kv_blocks), rope_(build_rope(cfg, context_length)), tp_(std::move(tp)) {
  if (kv_block_size <= 0) throw ParamError("kv_block_size", fmt::format("must be positive, got {}", kv_block_size));
  const int64_t contiguous = int64_t(max_sequences) * blocks_per_sequence();
  if (kv_blocks < 0 || contiguous > INT32_MAX)
    throw ParamError("kv_blocks", fmt::format("{} blocks of {} tokens", kv_blocks, kv_block_size));
  if (kv_blocks == 0) n_blocks_ = int(contiguous);
  const size_t U = size_t(max_ubatch), hidden = size_t(cfg.hidden_size),
               qd = size_t(cfg.num_heads) * cfg.head_dim, kvd = size_t(cfg.num_kv_heads) * cfg.head_dim,
               inter = size_t(cfg.intermediate_size);
  auto floats = [&](size_t n) { return be_.alloc(n * sizeof(float)); };
  x_ = floats(U * hidden);
  xb_ = floats(U * hidden);
  q_ = floats(U * qd);
  k_ = floats(U * kvd);
  v_ = floats(U * kvd);
  att_ = floats(U * qd);
  tmp_ = floats(U * hidden);
  gate_ = floats(U * inter);
  up_ = floats(U * inter);
  last_ = floats(U * hidden);
  tables_.resize(U + (3 * U + 1) / 2);  // slots, then three int32 arrays
  tables_dev_ = be_.alloc(tables_.size() * sizeof(int64_t));
  // A pool smaller than the contiguous layout serves only batches with block tables.
  default_tables_.resize(size_t(std::min<int64_t>(contiguous, n_blocks_)));
  for (size_t i = 0; i < default_tables_.size(); ++i) default_tables_[i] = int32_t(i);
  default_tables_dev_ = be_.alloc(default_tables_.size() * sizeof(int32_t));
  be_.upload(default_tables_dev_.data(), default_tables_.data(), default_tables_.size() * sizeof(int32_t));
  be_.kv_alloc(cfg.num_layers, n_blocks_, block_size_, cfg.num_kv_heads, cfg.head_dim, kv_type);
  if (tp_.comm && (cfg.num_heads == 0 || cfg.intermediate_size == 0)) {
    const std::vector<float> zeros(U * hidden, 0.0f);
    zeros_ = floats(U * hidden);
    be_.upload(zeros_.data(), zeros.data(), zeros.size() * sizeof(float));
  }
  // Repacking (or uploading) every weight now keeps that cost out of the first token. A
  // rank may hold no part of some (tensor parallel: no KV heads).
  std::vector<const LinearWeight*> all = {&w.lm_head};
  for (const LayerWeights& l : w.layers)
    for (auto proj : kProjections)
      if ((l.*proj).rows > 0 && (l.*proj).cols > 0) all.push_back(&(l.*proj));
  be_.prepare(std::span<const LinearWeight* const>(all));
}

void ForwardPass::validate(const Batch& b) const {
  if (b.tokens.size() != b.positions.size() || b.tokens.size() != b.seq_ids.size() ||
      b.tokens.size() != b.want_logits.size())
    throw Error("batch: tokens, positions, seq_ids and want_logits differ in length");
  const bool paged = !b.tables.empty();
  if (paged && b.tables.size() != b.size()) throw Error("batch: some tokens have a block table and some do not");
  if (!b.prompt.empty() && b.prompt.size() != b.size()) throw Error("batch: some tokens have a class and some do not");
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
  // Tensor parallel: only rank 0 gets logits and picks.
  const size_t wanted = lead() ? size_t(std::count(b.want_logits.begin(), b.want_logits.end(), Batch::kLogits)) : 0;
  if (logits_.size() < wanted * vocab) logits_.resize(wanted * vocab);
  greedy_.resize(lead() ? size_t(std::count(b.want_logits.begin(), b.want_logits.end(), Batch::kGreedy)) : 0);
  n_wanted_ = 0;
  n_greedy_ = 0;
  for (size_t begin = 0; begin < b.size(); begin += size_t(max_ubatch_)) {
    const size_t end = std::min(b.size(), begin + size_t(max_ubatch_));
    if (b.prompt.empty()) run_ubatch(b, begin, end);
    else run_classes(b, begin, end);
  }
  return {logits_.data(), wanted * vocab};
}

void ForwardPass::run_classes(const Batch& b, size_t begin, size_t end) {
  // The order of a ubatch's tokens changes nothing but their rows: every token's keys
  // and values are stored before any token attends.
  ordered_.clear();
  ordered_.block_ids.assign(b.block_ids.begin(), b.block_ids.end());
  ordered_.table_offsets.assign(b.table_offsets.begin(), b.table_offsets.end());
  int64_t decode = 0;
  size_t decode_rows = 0, decode_logits = 0, decode_greedy = 0;
  for (int prompt = 0; prompt < 2; ++prompt)
    for (size_t i = begin; i < end; ++i) {
      if (int(b.prompt[i] != 0) != prompt) continue;
      const uint8_t want = b.want_logits[i];
      ordered_.add(b.tokens[i], b.positions[i], b.seq_ids[i], false);
      ordered_.want_logits.back() = want;
      if (!b.tables.empty()) ordered_.tables.push_back(b.tables[i]);
      if (!prompt)
        ++decode, decode_rows += want != 0, decode_logits += want == Batch::kLogits, decode_greedy += want == Batch::kGreedy;
    }
  const size_t first = n_wanted_, first_greedy = n_greedy_;
  run_ubatch(ordered_, 0, ordered_.size(), decode, int64_t(decode_rows));
  if (!lead()) return;
  const size_t vocab = size_t(cfg_.vocab_size);
  ordered_logits_.assign(logits_.begin() + ptrdiff_t(first * vocab), logits_.begin() + ptrdiff_t(n_wanted_ * vocab));
  ordered_greedy_.assign(greedy_.begin() + ptrdiff_t(first_greedy), greedy_.begin() + ptrdiff_t(n_greedy_));
  // Each class's next row in the ordered results, of logits and of greedy picks.
  size_t next[2] = {0, decode_logits}, next_greedy[2] = {0, decode_greedy}, row = first, pick = first_greedy;
  for (size_t i = begin; i < end; ++i) {
    const bool prompt = b.prompt[i] != 0;
    if (b.want_logits[i] == Batch::kGreedy) greedy_[pick++] = ordered_greedy_[next_greedy[prompt]++];
    if (b.want_logits[i] != Batch::kLogits) continue;
    const size_t from = next[prompt]++;
    std::copy_n(ordered_logits_.begin() + ptrdiff_t(from * vocab), vocab, logits_.begin() + ptrdiff_t(row++ * vocab));
  }
}

void ForwardPass::matmul(const LinearWeight& w, const float* x, int64_t n, float* y) {
  if (observer_) observer_(w, x, n);
  if (override_ && override_(w, x, n, y)) return;
  be_.matmul(w, x, n, y);
}

void ForwardPass::matmul_add(const LinearWeight& w, const float* x, int64_t n, float* y, float* scratch) {
  if (observer_) observer_(w, x, n);
  if (override_ && override_(w, x, n, scratch)) return be_.add(y, scratch, n * w.rows);
  be_.matmul_add(w, x, n, y, scratch);
}

void ForwardPass::matmul_same_input(std::initializer_list<const LinearWeight*> ws, const float* x, int64_t n,
                                    std::initializer_list<float*> ys) {
  if (observer_)
    for (const LinearWeight* w : ws) observer_(*w, x, n);
  if (override_) {
    auto y = ys.begin();
    for (const LinearWeight* w : ws)
      if (!override_(*w, x, n, *y++)) be_.matmul(*w, x, n, y[-1]);
    return;
  }
  be_.matmul_same_input(std::span<const LinearWeight* const>(ws.begin(), ws.size()), x, n,
                        std::span<float* const>(ys.begin(), ys.size()));
}

AttentionBatch ForwardPass::setup_ubatch(const Batch& b, size_t begin, size_t end) {
  const ModelConfig& c = cfg_;
  const size_t n = end - begin;
  const bool paged = !b.tables.empty();
  const std::vector<int32_t>& ids = paged ? b.block_ids : default_tables_;
  for (size_t t = 0; t < n; ++t) {
    const size_t i = begin + t;
    const int32_t pos = b.positions[i];
    // A rank's embedding holds its vocabulary rows, then the zero row for the others'.
    const int64_t own = int64_t(b.tokens[i]) - tp_.vocab0;
    host32(kTokens)[t] = !tp_.comm ? b.tokens[i] : int32_t(own >= 0 && own < tp_.vocab_rows ? own : tp_.vocab_rows);
    host32(kPositions)[t] = pos;
    const int32_t first = paged ? b.table_offsets[size_t(b.tables[i])] : b.seq_ids[i] * blocks_per_sequence();
    host32(kBlockBegin)[t] = first;
    tables_[t] = int64_t(ids[size_t(first + pos / block_size_)]) * block_size_ + pos % block_size_;
  }
  // One copy of all four (a few KB): on a GPU each copy is a round of driver work.
  be_.upload(tables_dev_.data(), tables_.data(), tables_.size() * sizeof(int64_t));
  const int32_t* ids_dev = default_tables_dev_.as<int32_t>();
  if (paged) {
    const size_t bytes = ids.size() * sizeof(int32_t);
    if (block_ids_dev_.bytes() < bytes) block_ids_dev_ = be_.alloc(std::max(bytes, 2 * block_ids_dev_.bytes()));
    be_.upload(block_ids_dev_.data(), ids.data(), bytes);
    ids_dev = block_ids_dev_.as<int32_t>();
  }
  return AttentionBatch{std::span<const int32_t>(dev32(kPositions), n),
                        std::span<const int32_t>(ids_dev, ids.size()),
                        std::span<const int32_t>(dev32(kBlockBegin), n),
                        block_size_,
                        c.num_heads,
                        c.num_kv_heads,
                        c.head_dim,
                        c.sliding_window};
}

void ForwardPass::layer(int l, int64_t n, float* x, const AttentionBatch& ab) {
  const ModelConfig& c = cfg_;
  const int64_t hidden = c.hidden_size, inter = c.intermediate_size;
  const std::span<const int64_t> slots(tables_dev_.as<int64_t>(), size_t(n));
  const LayerWeights& lw = w_.layers[size_t(l)];
  float *xb = f(xb_), *q = f(q_), *k = f(k_), *v = f(v_), *att = f(att_), *tmp = f(tmp_), *gate = f(gate_),
        *up = f(up_);
  if (override_ && known_ && known_(lw.o) && override_(lw.o, nullptr, n, tmp)) {
    // Calibration already has o_proj's outputs: the attention that feeds it is not run
    // (and this layer's cache entries not written: no later op of the pass reads them).
    be_.add(x, tmp, n * hidden);
  } else {
    if (c.num_heads > 0) {
      be_.rmsnorm(x, lw.attn_norm, xb, hidden, n, c.rms_norm_eps);
      matmul_same_input({&lw.q, &lw.k, &lw.v}, xb, n, {q, k, v});
      be_.rope_store(l, q, k, v, ab.positions, slots, c.num_heads, c.num_kv_heads, rope_.table);
      be_.attention(l, q, ab, att);
    }
    add_output(lw.o, att, n, x, tmp);
  }

  if (inter > 0) {
    be_.rmsnorm(x, lw.mlp_norm, xb, hidden, n, c.rms_norm_eps);
    matmul_same_input({&lw.gate, &lw.up}, xb, n, {gate, up});
    be_.silu_mul(gate, up, gate, n * inter);
  }
  add_output(lw.down, gate, n, x, tmp);
}

void ForwardPass::add_output(const LinearWeight& w, const float* in, int64_t n, float* x, float* tmp) {
  const bool has = w.cols > 0;
  if (!tp_.comm) return matmul_add(w, in, n, x, tmp);
  const int64_t count = n * cfg_.hidden_size;
  if (lead()) {
    if (has) matmul_add(w, in, n, x, tmp);
    tp_.comm->all_reduce_sum(x, x, count);
  } else if (has) {
    matmul(w, in, n, tmp);
    tp_.comm->all_reduce_sum(tmp, x, count);
  } else {
    tp_.comm->all_reduce_sum(f(zeros_), x, count);
  }
}

void ForwardPass::embed(const Batch& b, float* x) {
  validate(b);
  const size_t hidden = size_t(cfg_.hidden_size);
  for (size_t begin = 0; begin < b.size(); begin += size_t(max_ubatch_)) {
    const size_t end = std::min(b.size(), begin + size_t(max_ubatch_));
    const AttentionBatch ab = setup_ubatch(b, begin, end);
    be_.embed(w_.embed, std::span<const int32_t>(dev32(kTokens), ab.positions.size()), f(x_));
    be_.download(x + begin * hidden, x_.data(), (end - begin) * hidden * sizeof(float));
  }
}

void ForwardPass::run_layer(int l, const Batch& b, float* x) {
  if (l < 0 || l >= cfg_.num_layers)
    throw Error(fmt::format("run_layer: layer {} outside the model's {} layers", l, cfg_.num_layers));
  validate(b);
  const size_t hidden = size_t(cfg_.hidden_size);
  for (size_t begin = 0; begin < b.size(); begin += size_t(max_ubatch_)) {
    const size_t end = std::min(b.size(), begin + size_t(max_ubatch_));
    const size_t bytes = (end - begin) * hidden * sizeof(float);
    const AttentionBatch ab = setup_ubatch(b, begin, end);
    be_.upload(x_.data(), x + begin * hidden, bytes);
    layer(l, int64_t(end - begin), f(x_), ab);
    be_.download(x + begin * hidden, x_.data(), bytes);
  }
}

void ForwardPass::run_ubatch(const Batch& b, size_t begin, size_t end, int64_t decode_rows,
                             int64_t decode_logit_rows) {
  const int64_t n = int64_t(end - begin);
  const size_t vocab = size_t(cfg_.vocab_size);
  const AttentionBatch ab = setup_ubatch(b, begin, end);
  // Only the rows that want logits go through the final norm and the LM head, which is
  // the single largest matrix of a small model; consecutive ones move as one copy.
  runs_.clear();
  size_t m = 0;
  bool greedy = false;
  for (size_t t = 0; t < size_t(n);) {
    if (!b.want_logits[begin + t]) {
      ++t;
      continue;
    }
    size_t run = 1;
    while (t + run < size_t(n) && b.want_logits[begin + t + run]) ++run;
    for (size_t i = t; i < t + run; ++i) greedy |= b.want_logits[begin + i] == Batch::kGreedy;
    runs_.emplace_back(t, run);
    m += run;
    t += run;
  }
  auto grow = [&](BackendBuffer& b, size_t bytes) {
    if (b.bytes() < bytes) b = be_.alloc(bytes);
  };
  if (lead()) grow(out_, m * vocab * sizeof(float));
  if (greedy && lead()) grow(ids_, std::max<size_t>(m, 64) * sizeof(int32_t));
  if (tp_.comm) {
    grow(local_, m * size_t(w_.lm_head.rows) * sizeof(float));
    if (lead()) grow(gather_, m * vocab * sizeof(float));
  }
  auto address = [](const BackendBuffer& b) { return int64_t(reinterpret_cast<uintptr_t>(b.data())); };
  // Everything step_ops takes that is not in backend memory.
  step_key_.assign({n, int64_t(reinterpret_cast<uintptr_t>(ab.block_ids.data())), address(out_), generation_,
                    decode_rows, decode_logit_rows, greedy ? address(ids_) : 0, address(local_), address(gather_)});
  for (const auto& [t, run] : runs_) step_key_.insert(step_key_.end(), {int64_t(t), int64_t(run)});
  // The calibration hooks read (or compute) each matmul as it runs: nothing recorded.
  const bool record = !observer_ && !override_;
  if (!record || !be_.replay_step(step_key_)) {
    if (record) be_.begin_step(step_key_);
    try {
      step_ops(n, ab, m, greedy, decode_rows, decode_logit_rows);
    } catch (...) {
      if (record) be_.end_step(false);
      throw;
    }
    if (record) be_.end_step(true);
  }
  if (!lead()) {
    // The step's end, so that a failure surfaces in this step's run() (the lead's
    // downloads wait likewise).
    be_.download(&sync_, x_.data(), sizeof(float));
    return;
  }
  if (m == 0) return;
  // Greedy rows send back their pick, the others their logits (runs of them in one copy).
  if (greedy) {
    ids_host_.resize(m);
    be_.download(ids_host_.data(), ids_.data(), m * sizeof(int32_t));
  }
  size_t row = 0, first = 0, len = 0;
  auto flush = [&] {
    if (len) be_.download(logits_.data() + n_wanted_ * vocab, out_.as<float>() + first * vocab, len * vocab * sizeof(float));
    n_wanted_ += len;
    len = 0;
  };
  for (const auto& [t, run] : runs_)
    for (size_t i = t; i < t + run; ++i, ++row) {
      if (b.want_logits[begin + i] == Batch::kGreedy) {
        flush();
        greedy_[n_greedy_++] = ids_host_[row];
        continue;
      }
      if (!len) first = row;
      ++len;
    }
  flush();
}

void ForwardPass::step_ops(int64_t n, const AttentionBatch& ab, size_t m, bool greedy, int64_t decode_rows,
                           int64_t decode_logit_rows) {
  const ModelConfig& c = cfg_;
  const size_t hidden = size_t(c.hidden_size);
  // The classes hold for this step's ops only (calibration's run_layer has none).
  struct Classes {
    Backend& be;
    ~Classes() { be.set_decode_rows(-1); }
  } classes{be_};
  be_.set_decode_rows(decode_rows);
  be_.embed(w_.embed, std::span<const int32_t>(dev32(kTokens), size_t(n)), f(x_));
  // Each token's row came from one rank, zeros from the others: the sum is exact.
  if (tp_.comm) tp_.comm->all_reduce_sum(f(x_), f(x_), n * int64_t(hidden));
  for (int l = 0; l < c.num_layers; ++l) layer(l, n, f(x_), ab);
  if (m == 0) return;
  be_.set_decode_rows(decode_logit_rows);
  size_t row = 0;
  for (const auto& [t, run] : runs_) {
    be_.copy(f(last_) + row * hidden, f(x_) + t * hidden, run * hidden * sizeof(float));
    row += run;
  }
  be_.rmsnorm(f(last_), w_.final_norm, f(last_), int64_t(hidden), int64_t(m), c.rms_norm_eps);
  if (tp_.comm) {
    // Each rank's vocabulary slice of the logits, gathered into rank 0's rows.
    matmul(w_.lm_head, f(last_), int64_t(m), f(local_));
    tp_.comm->gather_columns(f(local_), int64_t(m), tp_.vocab, f(out_), f(gather_));
  } else {
    matmul(w_.lm_head, f(last_), int64_t(m), f(out_));
  }
  if (greedy && lead()) be_.argmax(f(out_), int64_t(m), int64_t(c.vocab_size), ids_.as<int32_t>());
}

}  // namespace upg
