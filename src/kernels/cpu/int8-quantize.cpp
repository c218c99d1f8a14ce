// Activation quantization for the int8 kernels (int8-kernels.h), and the rows of the int8
// KV cache (quantize_i8). Activations are quantized once per matmul call, O(n_tokens *
// cols). Written so the compiler vectorizes it (no libm call per element), and split
// over tokens, because in prefill it runs once per matmul over every token
// and a serial pass there left the other core idle for a tenth of the prompt time.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/int8-kernels.h"
#include "kernels/cpu/kernels.h"

static_assert(upg::kernels::kActBlock == 32, "the lane scale layouts below assume 32-column blocks");

namespace upg::kernels {
namespace {

// Round to nearest even without a libm call: adding 1.5 * 2^23 pushes the fraction out
// of the mantissa (exact for |v| < 2^22; here |v| <= 127).
inline float round_even(float v) { return (v + 0x1.8p23f) - 0x1.8p23f; }

// Each 32-column block is one quantize_i8 (a block past `cols` gets scale 0, and its
// padding columns zero); the unsigned copy adds the +128 offset.
void quantize_token(const float* xt, int64_t cols, int64_t stride, uint8_t* q, float* s, float* lanes, int8_t* qs,
                    int32_t* block_offsets) {
  const int64_t blocks = stride / kActBlock;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kActBlock, c1 = std::min(cols, c0 + kActBlock);
    s[b] = quantize_i8(xt + c0, c1 - c0, qs + c0);
    for (int64_t c = std::max(c0, c1); c < c0 + kActBlock; ++c) qs[c] = 0;
  }
  // kActBlock is 32: two blocks per 64-column vector.
  for (int64_t b = 0; b < blocks; ++b)
    for (int i = 0; i < 8; ++i) lanes[(b / 2) * 16 + (b % 2) * 8 + i] = s[b];
  for (int64_t c = 0; c < stride; ++c) q[c] = uint8_t(int(qs[c]) + 128);
  for (int64_t b = 0; b < blocks; ++b) {
    int32_t sum = 0;
    for (int64_t c = b * kActBlock; c < (b + 1) * kActBlock; ++c) sum += qs[c];
    block_offsets[b] = -128 * sum;
  }
}

}  // namespace

float quantize_i8(const float* x, int64_t n, int8_t* q) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float inv = amax > 0 ? 127.0f / amax : 0.0f;
  for (int64_t i = 0; i < n; ++i) q[i] = int8_t(round_even(x[i] * inv));
  return amax / 127.0f;
}

void quantize_acts(const float* x, int64_t n_tokens, int64_t cols, QuantizedActs& out, ThreadPool* pool,
                   TokenClass token_class) {
  out.n_tokens = n_tokens;
  out.token_class = token_class;
  out.cols = cols;
  out.stride = (cols + kActAlign - 1) / kActAlign * kActAlign;
  const int64_t blocks = out.stride / kActBlock;
  // Grow only: a decode loop calls this with the same shapes and must not allocate.
  if (out.q.size() < size_t(n_tokens * out.stride)) out.q.resize(size_t(n_tokens * out.stride));
  if (out.scales.size() < size_t(n_tokens * blocks)) out.scales.resize(size_t(n_tokens * blocks));
  if (out.lane_scales.size() < size_t(n_tokens * out.stride / 4)) out.lane_scales.resize(size_t(n_tokens * out.stride / 4));
  if (out.qs.size() < size_t(n_tokens * out.stride)) out.qs.resize(size_t(n_tokens * out.stride));
  if (out.block_offsets.size() < size_t(n_tokens * blocks)) out.block_offsets.resize(size_t(n_tokens * blocks));
  auto rows = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      quantize_token(x + t * cols, cols, out.stride, out.q.data() + t * out.stride, out.scales.data() + t * blocks,
                     out.lane_scales.data() + t * (out.stride / 4), out.qs.data() + t * out.stride,
                     out.block_offsets.data() + t * blocks);
  };
  if (pool && n_tokens > 1) pool->parallel_for(n_tokens, [&](int64_t t0, int64_t t1, int) { rows(t0, t1); });
  else rows(0, n_tokens);
  out.groups = 0;
  const bool token_major =
      token_class == TokenClass::Prefill || (token_class == TokenClass::ByCount && n_tokens >= kGemmTokens);
  if (!token_major || n_tokens == 0) return;
  // Token-major copy for the prefill kernels: group g, column quad k, token lane l.
  out.groups = (n_tokens + 15) / 16;
  const int64_t quads = out.stride / 4;
  if (out.qt.size() < size_t(out.groups * quads * 64)) out.qt.resize(size_t(out.groups * quads * 64));
  if (out.scales_t.size() < size_t(out.groups * blocks * 16)) out.scales_t.resize(size_t(out.groups * blocks * 16));
  auto groups = [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      uint32_t* dst = reinterpret_cast<uint32_t*>(out.qt.data()) + g * quads * 16;
      float* st = out.scales_t.data() + g * blocks * 16;
      for (int l = 0; l < 16; ++l) {
        const int64_t t = g * 16 + l;
        if (t < n_tokens) {
          const uint8_t* q = out.q.data() + t * out.stride;
          for (int64_t k = 0; k < quads; ++k) std::memcpy(dst + k * 16 + l, q + 4 * k, 4);
          for (int64_t b = 0; b < blocks; ++b) st[b * 16 + l] = out.scales[size_t(t * blocks + b)];
        } else {
          for (int64_t k = 0; k < quads; ++k) dst[k * 16 + l] = 0x80808080u;
          for (int64_t b = 0; b < blocks; ++b) st[b * 16 + l] = 0.0f;
        }
      }
    }
  };
  if (pool) pool->parallel_for(out.groups, [&](int64_t g0, int64_t g1, int) { groups(g0, g1); });
  else groups(0, out.groups);
}

}  // namespace upg::kernels
