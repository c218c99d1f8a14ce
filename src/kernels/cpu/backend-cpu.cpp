// The CPU backend: the Backend ops (include/upg/backend.h) over this folder's kernels,
// threaded with one pool. The forward pass in model/ only sees the Backend interface.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "upg/backend.h"
#include "upg/error.h"
#include "upg/format.h"
#include "upg/kernels.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/linear-int8.h"

namespace upg {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(int n_threads, CpuKernels kernels) : pool_(n_threads), int8_(pool_, kernels), attention_(pool_), kernels_(kernels) {}

  std::string name() const override {
    return fmt::format("cpu ({}, int8 {}, {} threads)", kernels::simd_target(),
                       kernels_ == CpuKernels::Fast ? kernels::int8_target() : "reference", pool_.size());
  }
  int n_threads() const override { return pool_.size(); }

  bool supports(Op op, DType t) const override {
    if (op == Op::Matmul || op == Op::Embed)
      return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::I8;
    return true;
  }

  // Every layout has a fast kernel and a reference one; N:M is defined for int8 only.
  bool supports(format::Layout l, format::Encoding e) const override {
    return l == format::Layout::MdCsr || e == format::Encoding::Int8;
  }

  void matmul(const LinearWeight& w, const float* x, int64_t n_tokens, float* y) override {
    if (kernels::Int8Linear::handles(w)) return int8_.matmul(w, x, n_tokens, y);
    kernels::matmul(pool_, w.dtype, w.data, w.rows, w.cols, x, n_tokens, y, w.bias);
  }

  void prepare(const LinearWeight& w) override {
    const LinearWeight* one = &w;
    int8_.prepare(std::span<const LinearWeight* const>(&one, 1));
  }
  void prepare(std::span<const LinearWeight* const> weights) override { int8_.prepare(weights); }

  void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n_tokens, float eps) override {
    kernels::rmsnorm(x, w, out, dim, n_tokens, eps);
  }

  void rope(float* x, std::span<const int32_t> positions, int n_heads, const RopeTable& r) override {
    const int half = r.rotary_dim / 2;
    for (size_t t = 0; t < positions.size(); ++t) {
      const float* c = r.cos + size_t(positions[t]) * half;
      const float* s = r.sin + size_t(positions[t]) * half;
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * size_t(n_heads) + size_t(h)) * size_t(r.head_dim);
        for (int i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = b * c[i] + a * s[i];
        }
      }
    }
  }

  void silu_mul(const float* gate, const float* up, float* out, int64_t n) override {
    kernels::silu_mul(gate, up, out, n);
  }

  void add(float* y, const float* x, int64_t n) override { kernels::add_inplace(y, x, n); }

  void embed(const LinearWeight& table, std::span<const int32_t> tokens, float* out) override {
    for (size_t t = 0; t < tokens.size(); ++t) {
      float* o = out + t * size_t(table.cols);
      if (tokens[t] < 0 || tokens[t] >= table.rows)
        throw Error(fmt::format("embed: token id {} outside the {} rows of '{}'", tokens[t], table.rows, table.name));
      if (table.compressed) {
        format::decode_row(*table.compressed, tokens[t], o);
      } else if (table.dtype == DType::I8) {
        const auto* row = static_cast<const int8_t*>(table.data) + int64_t(tokens[t]) * table.cols;
        const float s = table.scales[tokens[t]];
        for (int64_t c = 0; c < table.cols; ++c) o[c] = s * float(row[c]);
      } else {
        const auto* row =
            static_cast<const std::byte*>(table.data) + dtype_bytes(table.dtype, tokens[t] * table.cols);
        convert_to_f32(table.dtype, row, o, table.cols);
      }
    }
  }

  void kv_alloc(int n_layers, int64_t n_slots_total, int n_kv_heads, int head_dim) override {
    n_kv_ = n_kv_heads;
    head_dim_ = head_dim;
    slots_ = n_slots_total;
    // calloc of a large block maps zero pages lazily, so a long context costs memory only
    // as it fills (std::vector would write every byte up front).
    const size_t n = size_t(n_layers) * size_t(n_slots_total) * size_t(n_kv_heads) * size_t(head_dim);
    k_ = zeroed(n);
    v_ = zeroed(n);
  }

  void kv_store(int layer, std::span<const int64_t> slots, const float* k, const float* v) override {
    const size_t hd = size_t(head_dim_), layer0 = size_t(layer) * size_t(n_kv_);
    for (size_t t = 0; t < slots.size(); ++t)
      for (size_t g = 0; g < size_t(n_kv_); ++g) {
        const size_t dst = ((layer0 + g) * size_t(slots_) + size_t(slots[t])) * hd;
        const size_t src = (t * size_t(n_kv_) + g) * hd;
        std::memcpy(k_.get() + dst, k + src, hd * sizeof(float));
        std::memcpy(v_.get() + dst, v + src, hd * sizeof(float));
      }
  }

  void attention(int layer, const float* q, const AttentionBatch& b, float* out) override {
    const size_t off = size_t(layer) * size_t(n_kv_) * size_t(slots_) * size_t(head_dim_);
    attention_.run(q, b, k_.get() + off, v_.get() + off, slots_, out);
  }

 private:
  kernels::ThreadPool pool_;
  kernels::Int8Linear int8_;
  kernels::Attention attention_;
  CpuKernels kernels_;
  int n_kv_ = 0, head_dim_ = 0;
  int64_t slots_ = 0;
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<float[], Free>;
  static Buffer zeroed(size_t n) {
    auto* p = static_cast<float*>(std::calloc(n ? n : 1, sizeof(float)));
    if (!p) throw Error(fmt::format("out of memory allocating {} MiB for the KV cache", n * 4 >> 20));
    return Buffer(p);
  }
  // [layers, kv_heads, slots, head_dim]: head-major, so attention reads each head's keys
  // and values as one sequential stream (slot-major, its rows were a whole slot apart).
  Buffer k_, v_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads, CpuKernels kernels) {
  return std::make_unique<CpuBackend>(n_threads, kernels);
}

}  // namespace upg
