#pragma once
// The backend interface: every op the shared forward pass needs. The backend owns the
// memory the ops run on (activations, token ids, positions, slots and block tables live
// in buffers from alloc(): host memory on the CPU, device memory on a GPU), its KV cache,
// and the execution forms of the weights it prepares. Weights, norm vectors and rope
// tables stay host memory that the backend brings in itself (a GPU backend uploads each
// once, keyed by its host address). The CPU backend implements it with the kernels/cpu
// layer, the CUDA backend with kernels/cuda; the forward pass in model/ never forks per
// device. Ask supports() before binding a weight format to a backend.
#include <algorithm>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "upg/core/block-copy.h"
#include "upg/format/format.h"
#include "upg/core/tensor.h"

namespace upg {

// A linear layer's weight as the backend sees it: y = W x (+ bias), W [rows, cols].
// `dtype` names the encoding (F32/F16/BF16, I8 with per-row `scales`, or a GGUF
// block-quantized type whose blocks `data` points at) and kernels take it as a parameter
// rather than being copied per encoding.
struct LinearWeight {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
  const float* bias = nullptr;  // [rows] or null
  // Dense int8 (dtype I8, the "W.qweight" + "W.scales" pair): W[r, c] = scales[r] * data[r, c].
  const float* scales = nullptr;
  // Set for UPG-compressed weights (then dtype/data are unused): the layout and encoding
  // travel with the matrix and the kernel is chosen from them.
  const format::CompressedMatrix* compressed = nullptr;
  const char* name = "";  // tensor name, for errors, profiles and calibration
};

// Sees the input of every matmul of a forward pass (calibration for Wanda pruning):
// x is [n_tokens, w.cols].
using MatmulObserver = std::function<void(const LinearWeight& w, const float* x, int64_t n_tokens)>;
// Computes a matmul of a forward pass in the backend's stead, y [n_tokens, w.rows] from x
// [n_tokens, w.cols] (bias included), and returns true; false leaves it to the backend.
// Calibration passes run their fp32 products through BLAS this way.
using MatmulOverride = std::function<bool(const LinearWeight& w, const float* x, int64_t n_tokens, float* y)>;
// Whether the override gives w's outputs for the coming tokens without reading its input
// (kept from an earlier pass): the forward pass may then skip the ops that only make
// that input (attention, for the output projection) and pass the override a null x.
using MatmulKnown = std::function<bool(const LinearWeight& w)>;

enum class Op { Matmul, RmsNorm, Rope, Attention, SiluMul, Add, Embed };

// Rotary embedding tables for one model, precomputed once for every position so no
// decode step pays for sin/cos: cos and sin are [max_positions, rotary_dim / 2], already
// scaled for the rope scaling type. The first rotary_dim dims of each head rotate.
struct RopeTable {
  int head_dim = 0;
  int rotary_dim = 0;
  int max_positions = 0;
  const float* cos = nullptr;
  const float* sin = nullptr;
  // Pairs (2i, 2i + 1) rotate by frequency i instead of (i, i + rotary_dim / 2): Q/K rows
  // in llama.cpp's order (ModelConfig::rope_interleaved).
  bool interleaved = false;
};

// Which keys/values each query token sees. The backend's KV storage is a pool of blocks
// of block_size slots per layer; the caller decides which blocks a sequence owns (the
// engine's KvManager, or Model's default of one contiguous run per sequence) and the
// backend only reads block tables: token t's keys at position p < block_size * its
// table's length are in slot block_ids[block_begin[t] + p / block_size] * block_size +
// p % block_size, and it attends to positions 0 .. positions[t].
struct AttentionBatch {
  std::span<const int32_t> positions;    // [n_tokens]
  std::span<const int32_t> block_ids;    // the block tables of the batch's sequences
  std::span<const int32_t> block_begin;  // [n_tokens] where the token's table starts in block_ids
  int block_size = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int sliding_window = 0;  // 0: attend to every earlier position
};

// Memory a backend allocated (Backend::alloc), freed with this handle. Its data() is only
// for the backend's own ops, upload, download and copy: on a GPU it is a device address.
class BackendBuffer {
 public:
  BackendBuffer() = default;
  BackendBuffer(void* data, size_t bytes, std::function<void(void*)> free)
      : data_(data, std::move(free)), bytes_(bytes) {}
  void* data() const { return data_.get(); }
  template <class T>
  T* as() const {
    return static_cast<T*>(data_.get());
  }
  size_t bytes() const { return bytes_; }

 private:
  std::unique_ptr<void, std::function<void(void*)>> data_{nullptr, [](void*) {}};
  size_t bytes_ = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual bool supports(Op op, DType weight_type) const = 0;
  // Whether matmul (and embed) run a compressed weight of this layout and encoding.
  virtual bool supports(format::Layout, format::Encoding) const { return false; }
  virtual int n_threads() const = 0;
  // Brings a weight into the backend's execution form before the first forward pass: the
  // CPU repacks MdCSR into bitmap windows, a GPU backend would upload. Optional: matmul
  // prepares a weight it has not seen on first use, so this only moves the cost to load.
  virtual void prepare(const LinearWeight&) {}
  // Many weights at once, so a backend can spread the work (the CPU repacks on every
  // core: a Phi-4-sized model holds 160 matrices of up to 92M weights).
  virtual void prepare(std::span<const LinearWeight* const> weights) {
    for (const LinearWeight* w : weights) prepare(*w);
  }
  // Called by prepare, from any of its threads, with a weight's source bytes once the
  // backend holds its own execution form of them and matmul reads them no more, so the
  // loader can give back their pages (WeightStore::release) while the next weight is
  // repacked. The bytes must stay readable: a tied embedding still reads its rows.
  using SourceUnused = std::function<void(const void* data, size_t nbytes)>;
  virtual void set_source_unused(SourceUnused) {}

  // Backend memory for activations and per-step tables, 64-byte aligned; throws
  // upg::Error naming the size when it does not fit. Every float/int pointer and span an
  // op below takes points into such memory (the CPU's is plain host memory, so any host
  // pointer will do there).
  virtual BackendBuffer alloc(size_t bytes) = 0;
  // Host -> backend memory, backend -> host memory (after the ops before it have
  // finished), and backend -> backend memory.
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;

  // Recorded steps (CUDA graphs). The forward pass brackets the ops of one ubatch:
  //   if (!replay_step(key)) { begin_step(key); ...ops...; end_step(true); }
  // `key` names everything those ops take that is not in backend memory (token count,
  // which rows reach the LM head, buffer addresses, the weights' generation); what changes
  // from step to step (token ids, positions, slots, block tables) lives in buffers the
  // caller uploads before. A recording backend may capture the ops between begin_step and
  // end_step (then run the capture) and replay it for a later step of the same key, so
  // the ops must not depend on anything else. end_step(false), after an op threw, drops
  // a capture half made. The CPU runs every op as it comes: replay_step answers false and
  // the other two do nothing.
  virtual bool replay_step(std::span<const int64_t> key) {
    (void)key;
    return false;
  }
  virtual void begin_step(std::span<const int64_t> key) { (void)key; }
  virtual void end_step(bool completed) { (void)completed; }

  // Batch invariance. A backend's kernels may sum in an order that depends on how many
  // tokens an op has (tiles for a few, a GEMM for many; attention split into chunks when
  // the batch is small), so a token's logits can move with what else is in its batch. A
  // backend that answers batch_invariant() true computes every token from that token and
  // its class alone once set_decode_rows(n) (n >= 0) has said, for the ops that follow,
  // that their first n tokens are generated ones (decode class) and the rest prompt
  // tokens (prefill class); a caller that keeps a token's class fixed (a request's prompt
  // tokens prefill, its generated ones decode) then gets the same tokens from a request
  // whatever shares its batch. -1: no classes, each op picks its fastest kernels.
  virtual bool batch_invariant() const { return false; }
  virtual void set_decode_rows(int64_t n) { (void)n; }

  // y[n_tokens, rows] = x[n_tokens, cols] W^T (+ bias)
  virtual void matmul(const LinearWeight& w, const float* x, int64_t n_tokens, float* y) = 0;
  // Several weights on one input, all with x's columns (a layer's q, k and v; its gate
  // and up): ys[i][n_tokens, ws[i].rows] = x ws[i]^T (+ bias). One op, so that a backend
  // can prepare x once and run every weight's rows in one parallel region; by default,
  // one matmul after another.
  virtual void matmul_same_input(std::span<const LinearWeight* const> ws, const float* x, int64_t n_tokens,
                                 std::span<float* const> ys) {
    for (size_t i = 0; i < ws.size() && i < ys.size(); ++i) matmul(*ws[i], x, n_tokens, ys[i]);
  }
  // out[t] = rmsnorm(x[t]) * w, rows of `dim`
  virtual void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n_tokens, float eps) = 0;
  // In place over [n_tokens, n_heads, head_dim] with per-token positions (rotate-half).
  virtual void rope(float* x, std::span<const int32_t> positions, int n_heads, const RopeTable& rope) = 0;
  // out[t, i] = silu(gate[t, i]) * up[t, i]
  virtual void silu_mul(const float* gate, const float* up, float* out, int64_t n) = 0;
  // y += x
  virtual void add(float* y, const float* x, int64_t n) = 0;
  // y[n_tokens, rows] += x[n_tokens, cols] W^T (+ bias): a matmul whose result goes onto
  // the residual stream, one op so a backend can add in the matmul's own output pass.
  // By default matmul into `scratch` [n_tokens, rows], then add.
  virtual void matmul_add(const LinearWeight& w, const float* x, int64_t n_tokens, float* y, float* scratch) {
    matmul(w, x, n_tokens, scratch);
    add(y, scratch, n_tokens * w.rows);
  }
  // rope on q [n_tokens, n_heads, head_dim] and k [n_tokens, n_kv_heads, head_dim], then
  // k and v stored at `slots` of `layer` (kv_store): what comes between a layer's q/k/v
  // matmul and its attention, one op so a backend can make it one pass. By default the
  // three ops.
  virtual void rope_store(int layer, float* q, float* k, const float* v, std::span<const int32_t> positions,
                          std::span<const int64_t> slots, int n_heads, int n_kv_heads, const RopeTable& rope) {
    this->rope(q, positions, n_heads, rope);
    this->rope(k, positions, n_kv_heads, rope);
    kv_store(layer, slots, k, v);
  }
  // ids[r] = the index of the largest of logits[r, 0 .. vocab), the first of equals:
  // greedy sampling where the logits are, so a step sends back ids, not logits. ids is
  // backend memory. The default reads host memory (the CPU's); a backend with memory of
  // its own overrides it.
  virtual void argmax(const float* logits, int64_t rows, int64_t vocab, int32_t* ids) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits + r * vocab;
      ids[r] = int32_t(std::max_element(row, row + vocab) - row);
    }
  }
  // Rows of the embedding table (F32/F16/BF16, dense I8 with scales, or compressed) to fp32.
  virtual void embed(const LinearWeight& table, std::span<const int32_t> tokens, float* out) = 0;

  // KV storage for K and for V: n_blocks blocks of block_size slots per layer, each slot
  // n_kv_heads x head_dim of `type` (F16, F32, or I8 with a scale per head_dim row; ask
  // supports(Op::Attention, type)). The backend picks the memory order.
  virtual void kv_alloc(int n_layers, int64_t n_blocks, int block_size, int n_kv_heads, int head_dim, DType type) = 0;
  // Bytes kv_alloc reserved (keys, values and any scales), as `upg` reports at load.
  virtual size_t kv_bytes() const = 0;
  // Stores k, v [n_tokens, n_kv_heads * head_dim] of `layer` at the given slots.
  virtual void kv_store(int layer, std::span<const int64_t> slots, const float* k, const float* v) = 0;
  // Copies whole blocks, src onto dst, in every layer (copy-on-write), in order.
  virtual void kv_copy_blocks(std::span<const BlockCopy> copies) = 0;
  // Causal attention of q [n_tokens, n_heads*head_dim] over `layer`'s stored keys and
  // values (GQA: query head h reads kv head h / (n_heads / n_kv_heads)); out has q's shape.
  virtual void attention(int layer, const float* q, const AttentionBatch& b, float* out) = 0;
};

}  // namespace upg
