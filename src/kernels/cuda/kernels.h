#pragma once
// The CUDA kernels behind CudaBackend (backend-cuda.cpp), as host functions that launch
// on a stream (launch.cuh: every kernel waits for the one before it where it must).
// Pointers are device memory. One file per concern: vector-ops.cu (rmsnorm, rope,
// silu_mul, add, embed, kv_store, rope_store), matmul.cu (fp32 activations),
// matmul-int8.cu (int8 activations), attention.cu, sampling.cu (argmax).
#include <cuda_runtime.h>

#include <cstdint>

namespace upg::cuda {

// Where a kernel runs: the backend's stream, and whether its kernels may start before
// the one before them ends (programmatic dependent launch, launch.cuh).
struct Stream {
  cudaStream_t stream = nullptr;
  bool pdl = false;
};

// How a weight's rows are stored on the device.
enum class WeightKind : uint8_t { F32, F16, BF16, I8, Block, Nm24 };

// A weight's execution form in device memory: dense rows of F32/F16/BF16/I8 (I8 with a
// scale per row, the others with one when `scales` is set), GGUF blocks (and UPG int4
// groups) in the block form of upg/kernels/block-quant-form.h (codes, fp16 d and m per
// sub-block of `sub` columns), value = d * code + m, or UPG 2:4 int8 as the file stores
// it (Nm24: `data` the kept values [rows, cols / 2], `positions` their 2-bit places in
// their group of 4 [rows, cols / 8], a scale per row; cols % 32 == 0).
struct DeviceWeight {
  WeightKind kind = WeightKind::F32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;      // dense [rows, cols], or block codes [rows, row_bytes]
  const float* scales = nullptr;   // I8, Nm24: [rows]; F16 (decoded prime/codebook): [rows] or null
  const uint8_t* positions = nullptr;  // Nm24
  const float* bias = nullptr;     // [rows] or null
  const uint16_t* d = nullptr;     // Block: [rows, subs] fp16
  const uint16_t* m = nullptr;     // Block: [rows, subs] fp16, when has_min
  int64_t row_bytes = 0, subs = 0;
  int sub = 32, bits = 4;
  const uint8_t* lut = nullptr;    // Block: the IQ4 table [16] the codes index, or null
  bool has_min = false;
  float offset = 0;
};

// y[n, rows] = x[n, cols] W^T (+ bias); with accumulate, y += that (a residual add).
void matmul(const DeviceWeight& w, const float* x, int64_t n, float* y, bool accumulate, const Stream& s);
// int8 activations for matmul_int8: per token `stride` (cols rounded up to 64) values,
// a scale per 32 columns (max |x| / 127) and the sum of the values per 16 columns.
struct Int8Acts {
  int8_t* q = nullptr;       // [n, stride], zero past cols
  float* scales = nullptr;   // [n, stride / 32]
  int32_t* sums = nullptr;   // [n, stride / 16]
  int64_t stride = 0;
};
inline int64_t int8_stride(int64_t cols) { return (cols + 63) / 64 * 64; }
// Whether matmul_int8 runs w: dense int8 with cols % 16 == 0, 2:4 int8, or a block form
// of 4- or 8-bit codes in 32-column sub-blocks without a table (Q4_0, Q4_1, Q8_0, Q4_K,
// UPG int4). matmul (fp32 activations) runs every other form.
bool runs_int8(const DeviceWeight& w);
void quantize_acts(const float* x, int64_t n, int64_t cols, const Int8Acts& a, const Stream& s);
// ys[i][n, ws[i]->rows] = acts ws[i]^T (+ bias) for count <= kMaxFused weights of one
// form (all I8, all 8-bit blocks, or all 4-bit blocks) with the activations' columns;
// with accumulate, ys[i] += that.
constexpr int kMaxFused = 3;
void matmul_int8(const DeviceWeight* const* ws, float* const* ys, int count, const Int8Acts& a, int64_t n,
                 bool accumulate, const Stream& s);
// out[t] = row tokens[t] of w, as fp32 (tokens already checked against w.rows).
void embed(const DeviceWeight& w, const int32_t* tokens, int64_t n, float* out, const Stream& s);

// rmsnorm and silu_mul also quantize what they write into acts when acts.q is set:
// rmsnorm as [n, dim] rows, silu_mul as one row of n values (n % 32 == 0), which is
// [n / cols, cols] rows when cols % 64 == 0.
void rmsnorm(const float* x, const float* w, float* out, int64_t dim, int64_t n, float eps, const Int8Acts& acts,
             const Stream& s);
// Rotate-half (or adjacent pairs when interleaved) over the first rotary_dim dims of each
// head; cos/sin [positions, rotary_dim / 2].
void rope(float* x, const int32_t* positions, int64_t n, int n_heads, int head_dim, int rotary_dim, bool interleaved,
          const float* cos, const float* sin, const Stream& s);
void silu_mul(const float* gate, const float* up, float* out, int64_t n, const Int8Acts& acts, const Stream& s);
void add(float* y, const float* x, int64_t n, const Stream& s);
// ids[r] = the first index of the largest of logits[r, 0 .. vocab) (greedy sampling),
// through parts [rows, argmax_slices(vocab)] of scratch.
struct ArgmaxParts {
  float* values = nullptr;
  int32_t* ids = nullptr;
};
int64_t argmax_slices(int64_t vocab);
void argmax(const float* logits, int64_t rows, int64_t vocab, int32_t* ids, const ArgmaxParts& parts, const Stream& s);

// The KV cache of one layer: [slots, kv_heads * head_dim] of keys and of values, fp16
// (half = true) or fp32.
struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  bool half = true;
};
// Stores k, v [n, kv_dim] at the given slots.
void kv_store(const KvLayer& kv, const int64_t* slots, int64_t n, int kv_dim, const float* k, const float* v,
              const Stream& s);
// rope on q [n, n_heads * head_dim] and k [n, n_kv_heads * head_dim] in place, then k and
// v stored at the slots: the three ops between a layer's q/k/v matmul and its attention
// in one launch.
struct RopeArgs {
  const int32_t* positions = nullptr;
  const float* cos = nullptr;
  const float* sin = nullptr;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0, rotary_dim = 0;
  bool interleaved = false;
};
void rope_store(float* q, float* k, const float* v, const RopeArgs& r, const KvLayer& kv, const int64_t* slots,
                int64_t n, const Stream& s);

struct AttentionArgs {
  const int32_t* positions = nullptr;    // [n_tokens]
  const int32_t* block_ids = nullptr;    // the batch's block tables
  const int32_t* block_begin = nullptr;  // [n_tokens]
  int64_t n_tokens = 0;
  int block_size = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, sliding_window = 0;
};
// Causal attention of q [n_tokens, n_heads * head_dim] over the layer's cache through
// the block tables; out has q's shape. head_dim at most 256. With acts.q set (head_dim
// % 32 == 0, n_heads * head_dim % 64 == 0) out is also quantized into acts for the
// output projection.
void attention(const float* q, const KvLayer& kv, const AttentionArgs& a, float* out, const Int8Acts& acts,
               const Stream& s);

}  // namespace upg::cuda
