#include "model/profiling-backend.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>
#include <unordered_map>

namespace upg {

namespace {

using Clock = std::chrono::steady_clock;

// "model.layers.12.mlp.up_proj.weight" -> "model.layers.*.mlp.up_proj.weight": one row
// per weight kind, not per layer.
std::string weight_kind(const char* name) {
  std::string out;
  for (const char* p = name; *p;) {
    const bool starts_field = p == name || p[-1] == '.';
    const char* q = p;
    while (std::isdigit(static_cast<unsigned char>(*q))) ++q;
    if (starts_field && q > p && (*q == '.' || *q == '\0')) {
      out += '*';
      p = q;
    } else {
      out += *p++;
    }
  }
  return out;
}

// Weight kinds run as one op, their common head and tail written once:
// "model.layers.*.self_attn.{q,k,v}_proj.weight".
std::string group_kind(const std::vector<std::string>& kinds) {
  if (kinds.size() == 1) return kinds[0];
  size_t head = kinds[0].size(), tail = kinds[0].size();
  for (const std::string& k : kinds) {
    head = std::min(head, size_t(std::mismatch(k.begin(), k.end(), kinds[0].begin(), kinds[0].end()).first - k.begin()));
    tail = std::min(tail, size_t(std::mismatch(k.rbegin(), k.rend(), kinds[0].rbegin(), kinds[0].rend()).first -
                                 k.rbegin()));
  }
  for (const std::string& k : kinds) tail = std::min(tail, k.size() - head);
  std::string out = kinds[0].substr(0, head) + "{";
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i) out += ',';
    out.append(kinds[i], head, kinds[i].size() - head - tail);
  }
  out += '}';
  out.append(kinds[0], kinds[0].size() - tail);
  return out;
}

int64_t stored_bytes(const LinearWeight& w) {
  if (w.compressed) return int64_t(w.compressed->bytes());
  return int64_t(dtype_bytes(w.dtype, w.rows * w.cols)) + (w.scales ? w.rows * int64_t(sizeof(float)) : 0);
}

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {
    static const char* const names[] = {"matmul", "rmsnorm", "rope", "attention", "silu_mul", "add", "embed",
                                        "kv_store"};
    for (bool single : {false, true})
      for (const char* n : names) ops_[single].push_back({n, single, 0, 0, 0});
  }

  std::string name() const override { return in_->name(); }
  bool supports(Op op, DType t) const override { return in_->supports(op, t); }
  bool supports(format::Layout l, format::Encoding e) const override { return in_->supports(l, e); }
  int n_threads() const override { return in_->n_threads(); }
  void prepare(const LinearWeight& w) override { in_->prepare(w); }
  void prepare(std::span<const LinearWeight* const> ws) override { in_->prepare(ws); }
  void set_source_unused(SourceUnused f) override { in_->set_source_unused(std::move(f)); }
  bool batch_invariant() const override { return in_->batch_invariant(); }
  void set_decode_rows(int64_t n) override { in_->set_decode_rows(n); }
  BackendBuffer alloc(size_t bytes) override { return in_->alloc(bytes); }
  void upload(void* dst, const void* src, size_t bytes) override { in_->upload(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { in_->download(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { in_->copy(dst, src, bytes); }

  void matmul(const LinearWeight& w, const float* x, int64_t n, float* y) override {
    OpProfile& p = matmul_row(w, n == 1);
    timed(p, [&] { in_->matmul(w, x, n, y); });
    p.weight_bytes += stored_bytes(w);
  }
  void matmul_same_input(std::span<const LinearWeight* const> ws, const float* x, int64_t n,
                         std::span<float* const> ys) override {
    OpProfile& p = matmul_row(ws, n == 1);
    timed(p, [&] { in_->matmul_same_input(ws, x, n, ys); });
    for (const LinearWeight* w : ws) p.weight_bytes += stored_bytes(*w);
  }
  void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n, float eps) override {
    timed(op(Op::RmsNorm, n), [&] { in_->rmsnorm(x, w, out, dim, n, eps); });
  }
  void rope(float* x, std::span<const int32_t> pos, int n_heads, const RopeTable& r) override {
    timed(op(Op::Rope, int64_t(pos.size())), [&] { in_->rope(x, pos, n_heads, r); });
  }
  // silu_mul and add see element counts, not tokens: they count as decode when the
  // last matmul did.
  void silu_mul(const float* g, const float* u, float* out, int64_t n) override {
    timed(ops_[last_single_][size_t(Op::SiluMul)], [&] { in_->silu_mul(g, u, out, n); });
  }
  void add(float* y, const float* x, int64_t n) override {
    timed(ops_[last_single_][size_t(Op::Add)], [&] { in_->add(y, x, n); });
  }
  void embed(const LinearWeight& t, std::span<const int32_t> tokens, float* out) override {
    timed(op(Op::Embed, int64_t(tokens.size())), [&] { in_->embed(t, tokens, out); });
  }
  // Memory of the inner backend's (a GPU's): not the default's host loop.
  void argmax(const float* logits, int64_t rows, int64_t vocab, int32_t* ids) override {
    in_->argmax(logits, rows, vocab, ids);
  }
  void kv_alloc(int n_layers, int64_t n_blocks, int block_size, int kv_heads, int head_dim, DType type) override {
    in_->kv_alloc(n_layers, n_blocks, block_size, kv_heads, head_dim, type);
  }
  size_t kv_bytes() const override { return in_->kv_bytes(); }
  void kv_store(int layer, std::span<const int64_t> slots, const float* k, const float* v) override {
    timed(ops_[slots.size() == 1][kKvStore], [&] { in_->kv_store(layer, slots, k, v); });
  }
  void kv_copy_blocks(std::span<const BlockCopy> copies) override { in_->kv_copy_blocks(copies); }
  void attention(int layer, const float* q, const AttentionBatch& b, float* out) override {
    timed(op(Op::Attention, int64_t(b.positions.size())), [&] { in_->attention(layer, q, b, out); });
  }

  std::vector<OpProfile> report() const {
    std::vector<OpProfile> out;
    for (const auto& rows : ops_)
      for (size_t i = 0; i < rows.size(); ++i)
        if (rows[i].calls && i != size_t(Op::Matmul)) out.push_back(rows[i]);
    for (const OpProfile& p : matmuls_) out.push_back(p);
    std::sort(out.begin(), out.end(), [](const OpProfile& a, const OpProfile& b) {
      return a.single_token != b.single_token ? b.single_token : a.seconds > b.seconds;
    });
    return out;
  }

 private:
  template <class Fn>
  static void timed(OpProfile& p, Fn&& fn) {
    const auto t0 = Clock::now();
    fn();
    p.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    ++p.calls;
  }

  static constexpr size_t kKvStore = size_t(Op::Embed) + 1;

  OpProfile& op(Op o, int64_t n_tokens) {
    last_single_ = n_tokens == 1;
    return ops_[last_single_][size_t(o)];
  }

  OpProfile& matmul_row(const LinearWeight& w, bool single) {
    const LinearWeight* one = &w;
    return matmul_row(std::span<const LinearWeight* const>(&one, 1), single);
  }
  // The row of the weights' kind (a group's kinds joined: group_kind); the map is keyed
  // by the first weight so the names are parsed once.
  OpProfile& matmul_row(std::span<const LinearWeight* const> ws, bool single) {
    last_single_ = single;
    const std::pair<const LinearWeight*, size_t> key{ws[0], 2 * ws.size() + single};
    auto it = row_of_.find(key);
    if (it == row_of_.end()) {
      std::vector<std::string> kinds;
      for (const LinearWeight* w : ws) kinds.push_back(weight_kind(w->name));
      const std::string kind = "matmul " + group_kind(kinds);
      auto same = std::find_if(matmuls_.begin(), matmuls_.end(),
                               [&](const OpProfile& p) { return p.name == kind && p.single_token == single; });
      const size_t i = size_t(same - matmuls_.begin());
      if (same == matmuls_.end()) matmuls_.push_back({kind, single, 0, 0, 0});
      it = row_of_.emplace(key, i).first;
    }
    return matmuls_[it->second];
  }

  struct KeyHash {
    size_t operator()(const std::pair<const LinearWeight*, size_t>& k) const {
      return std::hash<const void*>()(k.first) * 31 + k.second;
    }
  };

  std::unique_ptr<Backend> in_;
  std::vector<OpProfile> ops_[2];   // [single token][Op, then kv_store]
  std::vector<OpProfile> matmuls_;  // one per weight kind and single token or not
  // (first weight, 2 x group size + single token) -> row in matmuls_
  std::unordered_map<std::pair<const LinearWeight*, size_t>, size_t, KeyHash> row_of_;
  bool last_single_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_profiling_backend(std::unique_ptr<Backend> inner) {
  return std::make_unique<ProfilingBackend>(std::move(inner));
}

std::vector<OpProfile> profile_of(const Backend& backend) {
  const auto* p = dynamic_cast<const ProfilingBackend*>(&backend);
  return p ? p->report() : std::vector<OpProfile>{};
}

}  // namespace upg
