// Activation quantization for the int8 kernels (int8-kernels.h): once per matmul call,
// O(n_tokens * cols), negligible next to the matrix it feeds.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/int8-kernels.h"

namespace upg::kernels {

void quantize_acts(const float* x, int64_t n_tokens, int64_t cols, QuantizedActs& out) {
  out.n_tokens = n_tokens;
  out.cols = cols;
  out.stride = (cols + kActAlign - 1) / kActAlign * kActAlign;
  const int64_t blocks = out.stride / kActBlock;
  // Grow only: a decode loop calls this with the same shapes and must not allocate.
  if (out.q.size() < size_t(n_tokens * out.stride)) out.q.resize(size_t(n_tokens * out.stride));
  if (out.scales.size() < size_t(n_tokens * blocks)) out.scales.resize(size_t(n_tokens * blocks));
  if (out.pair_scales.size() < size_t(n_tokens * out.stride / 8)) out.pair_scales.resize(size_t(n_tokens * out.stride / 8));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * cols;
    uint8_t* q = out.q.data() + t * out.stride;
    float* s = out.scales.data() + t * blocks;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kActBlock, c1 = std::min(cols, c0 + kActBlock);
      float amax = 0;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(xt[c]));
      const float scale = amax / 127.0f;
      const float inv = amax > 0 ? 127.0f / amax : 0.0f;
      s[b] = scale;
      for (int64_t c = c0; c < c1; ++c) q[c] = uint8_t(int(std::nearbyint(xt[c] * inv)) + 128);
      for (int64_t c = std::max(c0, c1); c < c0 + kActBlock; ++c) q[c] = 128;
    }
    float* pairs = out.pair_scales.data() + t * (out.stride / 8);
    for (int64_t b = 0; b < blocks; ++b)
      for (int i = 0; i < 8; ++i) pairs[(b / 2) * 16 + (b % 2) * 8 + i] = s[b];
  }
}

}  // namespace upg::kernels
