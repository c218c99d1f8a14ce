// The CUDA backend: the Backend ops (include/upg/kernels/backend.h) over this folder's
// kernels, on one stream of one device. Activations live in device buffers from alloc();
// weights, norm vectors and rope tables are uploaded once, in their execution forms,
// keyed by their host address (prepare() does it at load; an op meeting one it has not
// seen uploads it then). A decode step's only exchanges with the host are the ForwardPass's
// upload of token ids, positions, slots and block tables and its download of logits; the
// step's kernels run as one CUDA graph once it has been seen twice (step-graphs.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kernels/cuda/backend-stream.h"
#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/step-graphs.h"
#include "upg/core/error.h"
#include "upg/format/ggml-blocks.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/block-quant-form.h"
#include "upg/kernels/dense-forms.h"
#include "upg/kernels_cuda/cuda.h"

namespace upg {

namespace cuda {

void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  throw Error(fmt::format("CUDA: {} failed ({}:{}): {} ({})", call, base ? base + 1 : file, line, cudaGetErrorString(e),
                          cudaGetErrorName(e)));
}

}  // namespace cuda

namespace {

using cuda::DeviceWeight;
using cuda::WeightKind;

// Device memory for `what`; out of memory is an error naming it, its size and what was free.
BackendBuffer device_alloc(size_t bytes, const std::string& what) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clears the sticky-free error so later calls see their own
    size_t free_b = 0, total = 0;
    (void)cudaMemGetInfo(&free_b, &total);
    throw Error(fmt::format("CUDA: out of device memory for {}: {} bytes needed, {} of {} free", what, bytes, free_b,
                            total));
  }
  if (e != cudaSuccess) cuda::throw_cuda_error(e, "cudaMalloc", __FILE__, __LINE__);
  return BackendBuffer(p, bytes, [](void* q) { cudaFree(q); });
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, bool graphs, bool pdl) : device_(device) {
    UPG_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    UPG_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    device_name_ = prop.name;
    UPG_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    // Programmatic dependent launch is a Hopper feature (launch.cuh).
    ks_ = {stream_, pdl && prop.major >= 9};
    graphs_ = std::make_unique<cuda::StepGraphs>(stream_, graphs);
    lut_ = upload_new(format::kIq4Lut, 16, "the IQ4 table");
  }
  ~CudaBackend() override {
    // Buffers free after this body; nothing may still run on them.
    cudaStreamSynchronize(stream_);
    graphs_.reset();
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return fmt::format("cuda ({}, device {})", device_name_, device_); }
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }
  int n_threads() const override { return 1; }

  // Dense F32/F16/BF16/I8 run as stored; every GGUF block type runs through the one
  // block form. The KV cache is f16 or f32 (int8 is not written yet).
  bool supports(Op op, DType t) const override {
    if (op == Op::Matmul || op == Op::Embed)
      return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::I8 || dtype_is_quantized(t);
    if (op == Op::Attention) return t == DType::F16 || t == DType::F32;
    return true;
  }
  // Every UPG layout and encoding, in the forms compressed_form() picks.
  bool supports(format::Layout l, format::Encoding e) const override { return format::layout_allows(l, e); }

  void prepare(const LinearWeight& w) override { (void)weight(w); }
  void set_source_unused(SourceUnused f) override { source_unused_ = std::move(f); }

  BackendBuffer alloc(size_t bytes) override { return device_alloc(bytes, "an activation buffer"); }
  void upload(void* dst, const void* src, size_t bytes) override {
    quantized_ = {};
    if (bytes) UPG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes) UPG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    UPG_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    quantized_ = {};
    if (bytes) UPG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }

  bool replay_step(std::span<const int64_t> key) override { return graphs_->replay(key); }
  void begin_step(std::span<const int64_t> key) override { graphs_->begin(key); }
  void end_step(bool completed) override { graphs_->end(completed); }

  void matmul(const LinearWeight& w, const float* x, int64_t n, float* y) override { run_matmul(w, x, n, y, false); }
  // The residual add happens in the matmul's own output writes.
  void matmul_add(const LinearWeight& w, const float* x, int64_t n, float* y, float*) override {
    run_matmul(w, x, n, y, true);
  }
  // Weights of one integer form share one quantization of x and run kMaxFused to a launch.
  void matmul_same_input(std::span<const LinearWeight* const> ws, const float* x, int64_t n,
                         std::span<float* const> ys) override {
    std::vector<const DeviceWeight*>& ds = fused_;
    ds.clear();
    for (const LinearWeight* w : ws) ds.push_back(&weight(*w));
    const DeviceWeight& d0 = *ds[0];
    const bool same = std::all_of(ds.begin(), ds.end(), [&](const DeviceWeight* d) {
      return cuda::runs_int8(*d) && d->kind == d0.kind && d->bits == d0.bits && d->cols == d0.cols;
    });
    if (!same || ws.size() != ys.size()) {
      quantized_ = {};
      return Backend::matmul_same_input(ws, x, n, ys);
    }
    const cuda::Int8Acts a = int8_acts(x, n, d0.cols);
    for (size_t i = 0; i < ds.size(); i += cuda::kMaxFused)
      cuda::matmul_int8(ds.data() + i, ys.data() + i, int(std::min<size_t>(cuda::kMaxFused, ds.size() - i)), a, n,
                        false, ks_);
  }
  // rmsnorm and silu_mul quantize what they write for the matmul that usually follows
  // (int8_acts finds it), which saves that matmul a launch of its own.
  void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n, float eps) override {
    const float* wd = vector_on_device(w, size_t(dim), "a norm weight");
    const cuda::Int8Acts a = acts_scratch(n, cuda::int8_stride(dim));
    cuda::rmsnorm(x, wd, out, dim, n, eps, a, ks_);
    quantized_ = {out, n, dim, a.stride};
  }
  void rope(float* x, std::span<const int32_t> positions, int n_heads, const RopeTable& r) override {
    quantized_ = {};
    const auto [cos, sin] = rope_tables(r);
    cuda::rope(x, positions.data(), int64_t(positions.size()), n_heads, r.head_dim, r.rotary_dim, r.interleaved, cos,
               sin, ks_);
  }
  void rope_store(int layer, float* q, float* k, const float* v, std::span<const int32_t> positions,
                  std::span<const int64_t> slots, int n_heads, int n_kv_heads, const RopeTable& r) override {
    quantized_ = {};
    if (positions.size() != slots.size())
      throw Error(fmt::format("rope_store: {} positions for {} slots", positions.size(), slots.size()));
    const cuda::RopeArgs a = rope_args(r, positions.data(), n_heads, n_kv_heads);
    cuda::rope_store(q, k, v, a, kv_layer(layer), slots.data(), int64_t(slots.size()), ks_);
  }
  void argmax(const float* logits, int64_t rows, int64_t vocab, int32_t* ids) override {
    const size_t parts = size_t(rows * cuda::argmax_slices(vocab));
    grow(argmax_parts_, parts * 8, "argmax scratch");
    cuda::argmax(logits, rows, vocab, ids, {argmax_parts_.as<float>(), argmax_parts_.as<int32_t>() + parts}, ks_);
  }
  void silu_mul(const float* gate, const float* up, float* out, int64_t n) override {
    quantized_ = {};
    if (n % 32 != 0) return cuda::silu_mul(gate, up, out, n, {}, ks_);
    cuda::silu_mul(gate, up, out, n, acts_scratch(1, n), ks_);
    quantized_ = {out, 1, n, n};
  }
  void add(float* y, const float* x, int64_t n) override {
    quantized_ = {};
    cuda::add(y, x, n, ks_);
  }
  // Token ids are device memory here: the forward pass has checked them against the
  // vocabulary, which every bound embedding table covers.
  void embed(const LinearWeight& table, std::span<const int32_t> tokens, float* out) override {
    quantized_ = {};
    cuda::embed(weight(table), tokens.data(), int64_t(tokens.size()), out, ks_);
  }

  void kv_alloc(int n_layers, int64_t n_blocks, int block_size, int n_kv_heads, int head_dim, DType type) override {
    if (!supports(Op::Attention, type))
      throw Error(fmt::format("the CUDA backend keeps its KV cache in f16 or f32, not {}", dtype_name(type)));
    if (n_blocks <= 0 || block_size <= 0)
      throw Error(fmt::format("KV cache: {} blocks of {} slots", n_blocks, block_size));
    graphs_->forget();
    n_layers_ = n_layers;
    block_size_ = block_size;
    n_blocks_ = n_blocks;
    kv_dim_ = n_kv_heads * head_dim;
    kv_half_ = type == DType::F16;
    layer_bytes_ = size_t(n_blocks) * size_t(block_size) * size_t(kv_dim_) * (kv_half_ ? 2 : 4);
    const size_t bytes = size_t(n_layers) * layer_bytes_;
    k_ = BackendBuffer();
    v_ = BackendBuffer();
    k_ = device_alloc(bytes, fmt::format("the KV cache's keys ({} blocks of {} tokens)", n_blocks, block_size));
    v_ = device_alloc(bytes, fmt::format("the KV cache's values ({} blocks of {} tokens)", n_blocks, block_size));
    UPG_CUDA_CHECK(cudaMemsetAsync(k_.data(), 0, bytes, stream_));
    UPG_CUDA_CHECK(cudaMemsetAsync(v_.data(), 0, bytes, stream_));
  }
  size_t kv_bytes() const override { return 2 * size_t(n_layers_) * layer_bytes_; }

  void kv_store(int layer, std::span<const int64_t> slots, const float* k, const float* v) override {
    quantized_ = {};
    cuda::kv_store(kv_layer(layer), slots.data(), int64_t(slots.size()), kv_dim_, k, v, ks_);
  }
  // Layer-major [layers, slots, kv_dim]: a block is one run of block_size * kv_dim values
  // per layer, of keys and of values.
  void kv_copy_blocks(std::span<const BlockCopy> copies) override {
    for (const BlockCopy& c : copies)
      if (c.src < 0 || c.dst < 0 || c.src >= n_blocks_ || c.dst >= n_blocks_)
        throw Error(fmt::format("KV cache: block copy {} -> {} outside the {} blocks", c.src, c.dst, n_blocks_));
    const size_t block_bytes = layer_bytes_ / size_t(n_blocks_);
    for (const BlockCopy& c : copies)
      for (int l = 0; l < n_layers_; ++l)
        for (const BackendBuffer* b : {&k_, &v_}) {
          auto* base = b->as<std::byte>() + size_t(l) * layer_bytes_;
          copy(base + size_t(c.dst) * block_bytes, base + size_t(c.src) * block_bytes, block_bytes);
        }
  }
  void attention(int layer, const float* q, const AttentionBatch& b, float* out) override {
    quantized_ = {};
    cuda::AttentionArgs a;
    a.positions = b.positions.data();
    a.block_ids = b.block_ids.data();
    a.block_begin = b.block_begin.data();
    a.n_tokens = int64_t(b.positions.size());
    a.block_size = b.block_size;
    a.n_heads = b.n_heads;
    a.n_kv_heads = b.n_kv_heads;
    a.head_dim = b.head_dim;
    a.sliding_window = b.sliding_window;
    if (b.head_dim > 256) throw Error(fmt::format("the CUDA attention runs head_dim up to 256, not {}", b.head_dim));
    // The output projection's int8 activations come out of attention itself when its
    // 32-column groups lie inside heads and need no zero padding.
    const int64_t cols = int64_t(b.n_heads) * b.head_dim;
    cuda::Int8Acts acts;
    if (b.head_dim % 32 == 0 && cols % 64 == 0) acts = acts_scratch(a.n_tokens, cols);
    cuda::attention(q, kv_layer(layer), a, out, acts, ks_);
    if (acts.q) quantized_ = {out, a.n_tokens, cols, acts.stride};
  }

 private:
  cuda::RopeArgs rope_args(const RopeTable& r, const int32_t* positions, int n_heads, int n_kv_heads) {
    cuda::RopeArgs a;
    a.positions = positions;
    std::tie(a.cos, a.sin) = rope_tables(r);
    a.n_heads = n_heads;
    a.n_kv_heads = n_kv_heads;
    a.head_dim = r.head_dim;
    a.rotary_dim = r.rotary_dim;
    a.interleaved = r.interleaved;
    if (n_kv_heads * r.head_dim != kv_dim_)
      throw Error(fmt::format("rope_store: {} kv heads of {} for a cache of width {}", n_kv_heads, r.head_dim, kv_dim_));
    return a;
  }

  // A weight's device form, with the host facts it was made from (a changed weight,
  // Model::replace_weight, gets a new form).
  struct Prepared {
    DeviceWeight w;
    DType dtype = DType::F32;
    int64_t rows = 0, cols = 0;
    const float* scales = nullptr;
    const float* bias = nullptr;
    std::vector<BackendBuffer> buffers;
  };

  // Forms are keyed by the host bytes they were made from: a dense weight's data, a
  // compressed one's first row. Row slices of a fused matrix (Phi-3's qkv_proj) each
  // start elsewhere: grouped codes (int4, int3, int2) and N:M values are sliced, while
  // MdCSR slices share the whole entry arrays (format::slice_rows) and differ by their
  // row pointers.
  static const void* key_of(const LinearWeight& lw) {
    if (!lw.compressed) return lw.data;
    const format::CompressedMatrix& m = *lw.compressed;
    if (format::is_grouped(m.encoding)) return m.int4.codes.data();
    if (m.layout == format::Layout::NM) return m.nm.values.data();
    return m.mdcsr.row_pointers.data();
  }

  const DeviceWeight& weight(const LinearWeight& lw) {
    const void* key = key_of(lw);
    auto it = weights_.find(key);
    if (it != weights_.end() && it->second.dtype == lw.dtype && it->second.rows == lw.rows &&
        it->second.cols == lw.cols && it->second.scales == lw.scales && it->second.bias == lw.bias)
      return it->second.w;
    if (!lw.compressed && !supports(Op::Matmul, lw.dtype))
      throw Error(fmt::format("tensor '{}': the CUDA backend cannot run {}", lw.name, dtype_name(lw.dtype)));
    Prepared p;
    p.dtype = lw.dtype;
    p.rows = lw.rows;
    p.cols = lw.cols;
    p.scales = lw.scales;
    p.bias = lw.bias;
    DeviceWeight& d = p.w;
    d.rows = lw.rows;
    d.cols = lw.cols;
    const std::string what = fmt::format("tensor '{}'", lw.name);
    const size_t bytes = lw.compressed ? 0 : dtype_bytes(lw.dtype, lw.rows * lw.cols);
    if (lw.compressed) {
      compressed_form(p, *lw.compressed, what);
    } else if (dtype_is_quantized(lw.dtype)) {
      block_form(p, kernels::pack_block_quant(lw.dtype, static_cast<const std::byte*>(lw.data), lw.rows, lw.cols),
                 what);
    } else {
      d.kind = lw.dtype == DType::F32    ? WeightKind::F32
               : lw.dtype == DType::F16  ? WeightKind::F16
               : lw.dtype == DType::BF16 ? WeightKind::BF16
                                         : WeightKind::I8;
      if (lw.dtype == DType::I8 && !lw.scales) throw Error(fmt::format("{}: int8 weights without row scales", what));
      d.data = keep(p, lw.data, bytes, what);
      if (lw.scales) d.scales = static_cast<const float*>(keep(p, lw.scales, size_t(lw.rows) * 4, what));
    }
    if (lw.bias) d.bias = static_cast<const float*>(keep(p, lw.bias, size_t(lw.rows) * 4, what + "'s bias"));
    if (source_unused_ && !lw.compressed) source_unused_(lw.data, bytes);
    Prepared& slot = weights_[key];
    if (!slot.buffers.empty()) graphs_->forget();  // a graph may read the form it replaces
    slot = std::move(p);
    return slot.w;
  }

  // A block form (GGUF, UPG int4) uploaded. 4-bit groups of 64 or 128 columns repeat
  // their (d, m) per 32 columns, so that the int8 kernel (32-column sub-blocks) runs them.
  void block_form(Prepared& p, kernels::BlockQuantRows form, const std::string& what) {
    if (form.bits == 4 && !form.lut && form.sub > 32 && form.sub % 32 == 0) {
      const int64_t per = form.sub / 32, subs = form.padded_cols / 32;
      auto split = [&](const std::vector<uint16_t>& v) {
        std::vector<uint16_t> out(size_t(form.rows * subs));
        for (int64_t r = 0; r < form.rows; ++r)
          for (int64_t s = 0; s < subs; ++s) out[size_t(r * subs + s)] = v[size_t(r * form.subs + s / per)];
        return out;
      };
      form.d = split(form.d);
      if (form.has_min) form.m = split(form.m);
      form.sub = 32;
      form.subs = subs;
    }
    DeviceWeight& d = p.w;
    d.kind = WeightKind::Block;
    d.row_bytes = form.row_bytes();
    d.subs = form.subs;
    d.sub = form.sub;
    d.bits = form.bits;
    d.has_min = form.has_min;
    d.offset = form.offset;
    d.lut = form.lut ? lut_.as<uint8_t>() : nullptr;
    d.data = keep(p, form.codes.data(), form.codes.size(), what);
    d.d = static_cast<const uint16_t*>(keep(p, form.d.data(), form.d.size() * 2, what));
    if (form.has_min) d.m = static_cast<const uint16_t*>(keep(p, form.m.data(), form.m.size() * 2, what));
  }

  // A UPG compressed matrix's device form: 2:4 int8 as the file stores it (its own
  // kernel, 0.625 bytes a weight); int4 (dense, or N:M expanded to dense) as a block
  // form, int3 and int2 too, their bit planes widened to nibbles (the integer kernels
  // read only nibbles: 4 bits a weight on the GPU, where the file keeps 3 or 2); other
  // int8 layouts (MdCSR, N:M but 2:4) decoded to dense int8 rows; prime and codebook
  // values to dense fp16 scaled per row. Why MdCSR runs dense here, unlike on the CPU:
  // docs/KERNELS.md, "CUDA".
  void compressed_form(Prepared& p, const format::CompressedMatrix& m, const std::string& what) {
    DeviceWeight& d = p.w;
    const size_t rows = size_t(m.rows);
    if (!supports(m.layout, m.encoding))
      throw Error(fmt::format("{}: the CUDA backend cannot run {} {}", what, format::layout_name(m.layout),
                              format::encoding_name(m.encoding)));
    if (format::is_grouped(m.encoding)) {
      kernels::BlockQuantRows form = kernels::int4_block_form(m);
      return block_form(p, form.bits == 4 ? std::move(form) : kernels::nibble_form(form), what);
    }
    if (m.layout == format::Layout::NM && m.nm.n == 2 && m.nm.m == 4 && m.cols % 32 == 0) {
      d.kind = WeightKind::Nm24;
      d.data = keep(p, m.nm.values.data(), m.nm.values.size(), what);
      d.positions = static_cast<const uint8_t*>(keep(p, m.nm.positions.data(), m.nm.positions.size(), what));
    } else if (m.encoding == format::Encoding::Int8) {
      const std::vector<int8_t> codes = kernels::dense_int8_codes(m);
      d.kind = WeightKind::I8;
      d.data = keep(p, codes.data(), codes.size(), what);
    } else {
      const kernels::DenseF16Rows f16 = kernels::pack_dense_f16(m);
      d.kind = WeightKind::F16;
      d.data = keep(p, f16.w.data(), f16.w.size() * 2, what);
      d.scales = static_cast<const float*>(keep(p, f16.scales.data(), rows * 4, what));
      return;
    }
    d.scales = static_cast<const float*>(keep(p, m.scales.data(), rows * 4, what));
  }

  // Forms with an integer kernel take int8 activations (matmul-int8.cu), the rest fp32;
  // accumulate adds onto y.
  void run_matmul(const LinearWeight& w, const float* x, int64_t n, float* y, bool accumulate) {
    const DeviceWeight& d = weight(w);
    if (!cuda::runs_int8(d)) {
      quantized_ = {};
      return cuda::matmul(d, x, n, y, accumulate, ks_);
    }
    const DeviceWeight* one = &d;
    cuda::matmul_int8(&one, &y, 1, int8_acts(x, n, d.cols), n, accumulate, ks_);
  }

  // x [n, cols] as int8: what the op just before wrote and quantized, when x is that and
  // [n, cols] its row shape; otherwise quantized now. Only for the matmul op that asks:
  // it may write where x was.
  cuda::Int8Acts int8_acts(const float* x, int64_t n, int64_t cols) {
    const Quantized z = quantized_;
    quantized_ = {};
    const cuda::Int8Acts a = acts_scratch(n, cuda::int8_stride(cols));
    const bool done = z.x == x && ((z.n == n && z.cols == cols && z.stride == a.stride) ||
                                   (z.n == 1 && z.cols == n * cols && cols % 64 == 0));
    if (!done) cuda::quantize_acts(x, n, cols, a, ks_);
    return a;
  }
  // The scratch for [n, stride] int8 activations, which grows (outside a capture: a
  // step's first run, which is never captured, grows it to what the step needs).
  cuda::Int8Acts acts_scratch(int64_t n, int64_t stride) {
    cuda::Int8Acts a;
    a.stride = stride;
    const size_t q = size_t(n * a.stride), bytes = q + size_t(n * a.stride / 32) * 4 + size_t(n * a.stride / 16) * 4;
    if (acts_.bytes() < bytes) quantized_ = {};  // what it held is gone with it
    grow(acts_, bytes, "int8 activations");
    a.q = acts_.as<int8_t>();
    a.scales = reinterpret_cast<float*>(acts_.as<std::byte>() + q);
    a.sums = reinterpret_cast<int32_t*>(a.scales + n * a.stride / 32);
    return a;
  }

  // Scratch b of at least `bytes`, grown (outside a capture: a step's first run, which
  // is never captured, grows it to what the step needs).
  void grow(BackendBuffer& b, size_t bytes, const char* what) {
    if (b.bytes() >= bytes) return;
    if (graphs_->capturing()) throw Error(fmt::format("CUDA: {} grew while recording a graph", what));
    graphs_->forget();
    const size_t grown = std::max(bytes, 2 * b.bytes());
    b = BackendBuffer();
    b = device_alloc(grown, what);
  }

  // Uploads host bytes into a new device buffer that p keeps.
  const void* keep(Prepared& p, const void* host, size_t bytes, const std::string& what) {
    p.buffers.push_back(upload_new(host, bytes, what));
    return p.buffers.back().data();
  }
  BackendBuffer upload_new(const void* host, size_t bytes, const std::string& what) {
    if (graphs_ && graphs_->capturing())
      throw Error(fmt::format("CUDA: {} first met while recording a graph (a step's ops changed between runs)", what));
    BackendBuffer b = device_alloc(bytes, what);
    UPG_CUDA_CHECK(cudaMemcpyAsync(b.data(), host, bytes, cudaMemcpyHostToDevice, stream_));
    // The host bytes may be given back (set_source_unused) once this returns.
    UPG_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return b;
  }

  // The rope table's cos and sin on the device.
  std::pair<const float*, const float*> rope_tables(const RopeTable& r) {
    const size_t n = size_t(r.max_positions) * size_t(r.rotary_dim / 2);
    return {vector_on_device(r.cos, n, "the rope table"), vector_on_device(r.sin, n, "the rope table")};
  }

  // A host vector (norm weight, rope table) on the device, uploaded on first use.
  const float* vector_on_device(const float* host, size_t n, const char* what) {
    auto it = vectors_.find(host);
    if (it != vectors_.end() && it->second.bytes() == n * sizeof(float)) return it->second.as<float>();
    if (it != vectors_.end()) graphs_->forget();
    return (vectors_[host] = upload_new(host, n * sizeof(float), what)).as<float>();
  }

  cuda::KvLayer kv_layer(int layer) const {
    if (layer < 0 || layer >= n_layers_) throw Error(fmt::format("KV cache: layer {} of {}", layer, n_layers_));
    return {k_.as<std::byte>() + size_t(layer) * layer_bytes_, v_.as<std::byte>() + size_t(layer) * layer_bytes_,
            kv_half_};
  }

  int device_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cuda::Stream ks_;  // stream_, for the kernels
  std::unique_ptr<cuda::StepGraphs> graphs_;
  SourceUnused source_unused_;
  BackendBuffer lut_;
  BackendBuffer acts_;  // int8 activations (acts_scratch)
  BackendBuffer argmax_parts_;  // argmax's per-slice bests
  // What acts_ holds: x [n, cols] quantized, until an op may have written x or acts_.
  struct Quantized {
    const float* x = nullptr;
    int64_t n = 0, cols = 0, stride = 0;
  } quantized_;
  std::vector<const DeviceWeight*> fused_;
  std::unordered_map<const void*, Prepared> weights_;
  std::unordered_map<const void*, BackendBuffer> vectors_;
  int n_layers_ = 0, block_size_ = 1, kv_dim_ = 0;
  int64_t n_blocks_ = 0;
  bool kv_half_ = true;
  size_t layer_bytes_ = 0;
  BackendBuffer k_, v_;
};

}  // namespace

bool cuda_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why)
      *why = e != cudaSuccess ? fmt::format("no CUDA device: cudaGetDeviceCount says {}", cudaGetErrorString(e))
                              : std::string("no CUDA device: cudaGetDeviceCount found none");
    (void)cudaGetLastError();
    return false;
  }
  return true;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

namespace cuda {

namespace {
CudaBackend& cuda_backend(Backend& be) {
  auto* c = dynamic_cast<CudaBackend*>(&be);
  if (!c) throw Error(fmt::format("NCCL needs CUDA backends, not {}", be.name()));
  return *c;
}
}  // namespace

cudaStream_t stream_of(Backend& be) { return cuda_backend(be).stream(); }
int device_of(Backend& be) { return cuda_backend(be).device(); }

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(int device, bool graphs, bool pdl) {
  std::string why;
  if (!cuda_available(&why)) throw Error(why);
  return std::make_unique<CudaBackend>(device, graphs, pdl);
}

}  // namespace upg
