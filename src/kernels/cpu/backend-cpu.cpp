// The CPU backend: the Backend ops (include/upg/kernels/backend.h) over this folder's kernels,
// threaded with one pool. The forward pass in model/ only sees the Backend interface.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "upg/core/page-in.h"
#include "upg/format/ggml-blocks.h"
#include "upg/kernels/backend.h"
#include "upg/core/error.h"
#include "upg/format/format.h"
#include "kernels/cpu/kernels.h"
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
    // Block-quantized (GGUF) weights run through the integer kernels, and embed dequantizes
    // the rows it needs.
    if (op == Op::Matmul || op == Op::Embed)
      return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::I8 || dtype_is_quantized(t);
    if (op == Op::Attention) return t == DType::F32 || t == DType::F16 || t == DType::I8;  // the KV cache's type
    return true;
  }

  // Every pair the format defines has a fast kernel and a reference one.
  bool supports(format::Layout l, format::Encoding e) const override { return format::layout_allows(l, e); }

  // The float matmul sums each token in its own chains whatever the call (its tiles
  // only share weight loads), and so do embed, the norms and the element-wise ops; the
  // integer kernels and attention keep to the classes once told them.
  bool batch_invariant() const override { return true; }
  void set_decode_rows(int64_t n) override {
    int8_.set_decode_rows(n);
    attention_.set_fixed_chunks(n >= 0);
  }

  void matmul(const LinearWeight& w, const float* x, int64_t n_tokens, float* y) override {
    if (kernels::Int8Linear::handles(w)) return int8_.matmul(w, x, n_tokens, y);
    kernels::matmul(pool_, w.dtype, w.data, w.rows, w.cols, x, n_tokens, y, w.bias);
  }

  // The int8 and compressed weights of a group share one quantization of x and one
  // parallel region: each region costs a wake-up and a wait of every thread, which a
  // small matrix (a decode step's k and v projections) cannot hide (docs/KERNELS.md).
  void matmul_same_input(std::span<const LinearWeight* const> ws, const float* x, int64_t n_tokens,
                         std::span<float* const> ys) override {
    if (std::all_of(ws.begin(), ws.end(), [](const LinearWeight* w) { return kernels::Int8Linear::handles(*w); }))
      return int8_.matmul_same_input(ws, x, n_tokens, ys);
    Backend::matmul_same_input(ws, x, n_tokens, ys);
  }

  void prepare(const LinearWeight& w) override {
    const LinearWeight* one = &w;
    prepare(std::span<const LinearWeight* const>(&one, 1));
  }
  // Weights that run in place (dense, often straight from the model file's mapping) are
  // paged in here, at load, instead of by the first prompt's faults; compressed and
  // block-quantized ones are read whole by their repack (which pages a block-quantized
  // one in, and gives its pages back, one weight at a time).
  void prepare(std::span<const LinearWeight* const> weights) override {
    for (const LinearWeight* w : weights)
      if (!w->compressed && w->data && !int8_.repacks(*w)) {
        page_in(w->data, dtype_bytes(w->dtype, w->rows * w->cols));
        if (w->scales) page_in(w->scales, size_t(w->rows) * sizeof(float));
      }
    int8_.prepare(weights);
  }

  void set_source_unused(SourceUnused f) override { int8_.set_source_unused(std::move(f)); }

  // Host memory: the ops run on it in place, and the exchanges are copies.
  BackendBuffer alloc(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw Error(fmt::format("out of memory allocating {} bytes for activations", bytes));
    return BackendBuffer(p, bytes, [](void* q) { std::free(q); });
  }
  void upload(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memmove(dst, src, bytes);
  }

  void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n_tokens, float eps) override {
    split(n_tokens, dim, [&](int64_t t0, int64_t t1) {
      kernels::rmsnorm(x + t0 * dim, w, out + t0 * dim, dim, t1 - t0, eps);
    });
  }

  void rope(float* x, std::span<const int32_t> positions, int n_heads, const RopeTable& r) override {
    const int half = r.rotary_dim / 2;
    split(int64_t(positions.size()), int64_t(n_heads) * r.head_dim, [&](int64_t t0, int64_t t1) {
      rope_tokens(x, positions, n_heads, r, half, size_t(t0), size_t(t1));
    });
  }

  static void rope_tokens(float* x, std::span<const int32_t> positions, int n_heads, const RopeTable& r, int half,
                          size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      const float* c = r.cos + size_t(positions[t]) * half;
      const float* s = r.sin + size_t(positions[t]) * half;
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * size_t(n_heads) + size_t(h)) * size_t(r.head_dim);
        // The partner of dim i: half a rotary span on (rotate-half), or the next dim.
        const int step = r.interleaved ? 2 : 1, partner = r.interleaved ? 1 : half;
        for (int i = 0; i < half; ++i) {
          float* p = v + i * step;
          const float a = p[0], b = p[partner];
          p[0] = a * c[i] - b * s[i];
          p[partner] = b * c[i] + a * s[i];
        }
      }
    }
  }

  void silu_mul(const float* gate, const float* up, float* out, int64_t n) override {
    split(n, 1, [&](int64_t i0, int64_t i1) { kernels::silu_mul(gate + i0, up + i0, out + i0, i1 - i0); });
  }

  void add(float* y, const float* x, int64_t n) override {
    split(n, 1, [&](int64_t i0, int64_t i1) { kernels::add_inplace(y + i0, x + i0, i1 - i0); });
  }

  void embed(const LinearWeight& table, std::span<const int32_t> tokens, float* out) override {
    for (size_t t = 0; t < tokens.size(); ++t) {
      float* o = out + t * size_t(table.cols);
      if (tokens[t] < 0 || tokens[t] >= table.rows)
        throw Error(fmt::format("embed: token id {} outside the {} rows of '{}'", tokens[t], table.rows, table.name));
      if (table.compressed) {
        format::decode_row(*table.compressed, tokens[t], o);
      } else if (dtype_is_quantized(table.dtype)) {
        const auto* row = static_cast<const uint8_t*>(table.data) + dtype_bytes(table.dtype, tokens[t] * table.cols);
        format::dequantize_ggml(table.dtype, row, o, table.cols);
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

  void kv_alloc(int n_layers, int64_t n_blocks, int block_size, int n_kv_heads, int head_dim, DType type) override {
    if (!supports(Op::Attention, type))
      throw Error(fmt::format("the CPU backend keeps its KV cache in f16, f32 or int8, not {}", dtype_name(type)));
    if (n_blocks <= 0 || block_size <= 0)
      throw Error(fmt::format("KV cache: {} blocks of {} slots", n_blocks, block_size));
    const int64_t n_slots_total = n_blocks * block_size;
    n_layers_ = n_layers;
    n_kv_ = n_kv_heads;
    head_dim_ = head_dim;
    block_size_ = block_size;
    slots_ = n_slots_total;
    kv_type_ = type;
    // calloc of a large block maps zero pages lazily, so a long context costs memory only
    // as it fills (std::vector would write every byte up front).
    const size_t rows = size_t(n_layers) * size_t(n_slots_total) * size_t(n_kv_heads);
    const size_t n = rows * size_t(head_dim), scales = type == DType::I8 ? rows * sizeof(float) : 0;
    k_ = zeroed(n * dtype_bytes(type, 1));
    v_ = zeroed(n * dtype_bytes(type, 1));
    k_scales_ = zeroed(scales);
    v_scales_ = zeroed(scales);
    kv_bytes_ = 2 * (n * dtype_bytes(type, 1) + scales);
  }

  size_t kv_bytes() const override { return kv_bytes_; }

  void kv_store(int layer, std::span<const int64_t> slots, const float* k, const float* v) override {
    const size_t hd = size_t(head_dim_), layer0 = size_t(layer) * size_t(n_kv_);
    split(int64_t(slots.size()), 2 * n_kv_ * head_dim_, [&](int64_t t0, int64_t t1) {
      for (size_t t = size_t(t0); t < size_t(t1); ++t)
        for (size_t g = 0; g < size_t(n_kv_); ++g) {
          const size_t row = (layer0 + g) * size_t(slots_) + size_t(slots[t]), dst = row * hd;
          const size_t src = (t * size_t(n_kv_) + g) * hd;
          switch (kv_type_) {
            case DType::F16:
              kernels::f32_to_f16(k + src, as<uint16_t>(k_) + dst, int64_t(hd));
              kernels::f32_to_f16(v + src, as<uint16_t>(v_) + dst, int64_t(hd));
              break;
            case DType::I8:
              as<float>(k_scales_)[row] = kernels::quantize_i8(k + src, int64_t(hd), as<int8_t>(k_) + dst);
              as<float>(v_scales_)[row] = kernels::quantize_i8(v + src, int64_t(hd), as<int8_t>(v_) + dst);
              break;
            default:
              std::memcpy(as<float>(k_) + dst, k + src, hd * sizeof(float));
              std::memcpy(as<float>(v_) + dst, v + src, hd * sizeof(float));
          }
        }
    });
  }

  // A block is block_size_ rows of each (layer, head) run: one memcpy per run, of keys,
  // values and int8 scales alike.
  void kv_copy_blocks(std::span<const BlockCopy> copies) override {
    const int64_t n_blocks = slots_ / block_size_;
    for (const BlockCopy& c : copies)
      if (c.src < 0 || c.dst < 0 || c.src >= n_blocks || c.dst >= n_blocks)
        throw Error(fmt::format("KV cache: block copy {} -> {} outside the {} blocks", c.src, c.dst, n_blocks));
    const size_t B = size_t(block_size_), hd = size_t(head_dim_), runs = size_t(n_layers_) * size_t(n_kv_);
    auto copy = [&](void* base, size_t row_bytes) {
      if (!base) return;
      for (const BlockCopy& c : copies)
        for (size_t r = 0; r < runs; ++r) {
          auto* run = static_cast<std::byte*>(base) + r * size_t(slots_) * row_bytes;
          std::memmove(run + size_t(c.dst) * B * row_bytes, run + size_t(c.src) * B * row_bytes, B * row_bytes);
        }
    };
    const size_t row = dtype_bytes(kv_type_, int64_t(hd));
    copy(k_.get(), row);
    copy(v_.get(), row);
    if (kv_type_ == DType::I8) {
      copy(k_scales_.get(), sizeof(float));
      copy(v_scales_.get(), sizeof(float));
    }
  }

  void attention(int layer, const float* q, const AttentionBatch& b, float* out) override {
    const size_t row = size_t(layer) * size_t(n_kv_) * size_t(slots_), off = row * size_t(head_dim_);
    switch (kv_type_) {
      case DType::F16:
        return attention_.run(q, b, kernels::KvLayer<uint16_t>{as<uint16_t>(k_) + off, as<uint16_t>(v_) + off}, slots_,
                              out);
      case DType::I8:
        return attention_.run(q, b,
                              kernels::KvLayer<int8_t>{as<int8_t>(k_) + off, as<int8_t>(v_) + off,
                                                       as<float>(k_scales_) + row, as<float>(v_scales_) + row},
                              slots_, out);
      default:
        return attention_.run(q, b, kernels::KvLayer<float>{as<float>(k_) + off, as<float>(v_) + off}, slots_, out);
    }
  }

 private:
  // Runs fn over [0, n) items of `size` floats each: on the calling thread when they are
  // few (a decode step's vectors take a microsecond or two, about what waking the pool
  // costs), else split over the pool. A 371-token prompt spent 6% of its time in these
  // elementwise ops on one thread.
  template <class Fn>
  void split(int64_t n, int64_t size, Fn&& fn) {
    constexpr int64_t kMinFloats = 32768;
    if (n * size < 2 * kMinFloats || pool_.size() == 1) return fn(int64_t{0}, n);
    const int64_t pieces = std::min<int64_t>({int64_t(pool_.size()), n, n * size / kMinFloats});
    pool_.parallel_for(pieces, [&](int64_t p0, int64_t p1, int) { fn(n * p0 / pieces, n * p1 / pieces); });
  }

  ThreadPool pool_;
  kernels::Int8Linear int8_;
  kernels::Attention attention_;
  CpuKernels kernels_;
  int n_layers_ = 0, n_kv_ = 0, head_dim_ = 0, block_size_ = 1;
  int64_t slots_ = 0;
  DType kv_type_ = DType::F16;
  size_t kv_bytes_ = 0;
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<std::byte[], Free>;
  static Buffer zeroed(size_t bytes) {
    auto* p = static_cast<std::byte*>(std::calloc(bytes ? bytes : 1, 1));
    if (!p) throw Error(fmt::format("out of memory allocating {} MiB for the KV cache", bytes >> 20));
    return Buffer(p);
  }
  template <class T>
  static T* as(const Buffer& b) {
    return reinterpret_cast<T*>(b.get());
  }
  // [layers, kv_heads, slots, head_dim] of f16 (the default, as llama.cpp's) or f32:
  // head-major, so attention reads each head's keys and values as one sequential stream
  // (slot-major, its rows were a whole slot apart). A decode step reads the cache from
  // memory (the weights streamed since have evicted it), so f16 halves the time as well
  // as the bytes (UPG_AttentionDecode, docs/BENCHMARKS.md, "Attention"). Its rounding,
  // 2^-11 of each value, moves the default model's logits by a few 1e-3.
  // int8 (--cache-type int8) halves the bytes again, with one scale per row of head_dim
  // values, [layers, kv_heads, slots], in k_scales_ and v_scales_. Slots are counted
  // block by block (block * block_size + offset), so a paged sequence whose blocks follow
  // each other is still one stream per head.
  Buffer k_, v_, k_scales_, v_scales_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads, CpuKernels kernels) {
  return std::make_unique<CpuBackend>(n_threads, kernels);
}

}  // namespace upg
