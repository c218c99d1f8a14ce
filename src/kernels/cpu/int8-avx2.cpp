// The int8 kernels for AVX2 (Haswell, Zen 1-3). AVX2 has no int8 dot product with an
// int32 sum, so a 64-column window is multiplied with vpmaddubsw (u8 x s8 pairs to s16)
// and vpmaddwd (s16 pairs to s32). vpmaddubsw saturates past 32767, so the unsigned
// operand is |w| (at most 128) and the activation takes w's sign: 2 * 128 * 127 fits.
// Sparse layouts are expanded window by window into a dense 64-byte row piece first
// (AVX2 has no byte expand or cross-lane byte permute).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/int8-kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,popcnt,bmi,bmi2")

namespace upg::kernels {
namespace {

static_assert(kActBlock == 32, "one 32-byte half per activation block");

// Per-lane int32 sums of w[0..31] * (q[0..31] - 128): one activation block, 8 lanes.
inline __m256i dot_block(const int8_t* w, const uint8_t* q) {
  const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  const __m256i xs = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)),
                                      _mm256_set1_epi8(char(0x80)));
  const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xs, wv));
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One row of any layout: `window(w, buf)` yields a pointer to window w's 64 weights
// (in place for dense rows, expanded into buf for sparse ones); every token runs against
// each window while it is in cache.
template <class Window>
void row_product(const QuantizedActs& a, int64_t windows, Window&& window, float scale, int64_t r, float* y,
                 int64_t ldy) {
  constexpr int kTile = 4;
  alignas(32) int8_t buf[64];
  for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTile) {
    const int nt = int(std::min<int64_t>(kTile, a.n_tokens - t0));
    __m256 f[kTile] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t w = 0; w < windows; ++w) {
      const int8_t* wp = window(w, buf);
      for (int j = 0; j < nt; ++j)
        for (int h = 0; h < 2; ++h) {
          const __m256i s = dot_block(wp + 32 * h, a.row(t0 + j) + 64 * w + 32 * h);
          f[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(a.block_scales(t0 + j)[2 * w + h]), f[j]);
        }
    }
    for (int j = 0; j < nt; ++j) y[(t0 + j) * ldy + r] = hsum(f[j]) * scale;
  }
}

void dense(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t windows = (m.cols + 63) / 64, full = m.cols / 64;
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* row = m.w + r * m.cols;
    row_product(a, windows, [&](int64_t w, int8_t* buf) -> const int8_t* {
      if (w < full) return row + 64 * w;
      std::memset(buf, 0, 64);  // the row's last, partial window
      std::memcpy(buf, row + 64 * w, size_t(m.cols - 64 * w));
      return buf;
    }, m.scales[r], r, y, ldy);
  }
}

void nm(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int n = m.nm.n, mm = m.nm.m, bits = format::nm_bits(mm);
  const int64_t per_row = format::nm_values_per_row(m.cols, n, mm);
  const int64_t pos_bytes = format::nm_position_bytes_per_row(m.cols, n, mm);
  const int64_t per_window = 64 / mm * n;  // M divides 64: a window holds whole groups
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* vals = m.nm.values.data() + r * per_row;
    const uint8_t* pos = m.nm.positions.data() + r * pos_bytes;
    row_product(a, (m.cols + 63) / 64, [&](int64_t w, int8_t* buf) -> const int8_t* {
      std::memset(buf, 0, 64);
      const int64_t k1 = std::min(per_row, (w + 1) * per_window);
      for (int64_t k = w * per_window; k < k1; ++k)
        buf[(k / n) * mm + format::nm_position(pos, k, bits) - 64 * w] = vals[k];
      return buf;
    }, m.scales[size_t(r)], r, y, ldy);
  }
}

void bitmap(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* v = m.values.data() + m.row_start[size_t(r)];
    const uint64_t* masks = m.masks.data() + r * m.windows;
    // Windows are asked for in order for each token tile; restart the value cursor with w = 0.
    const uint8_t* cursor = v;
    row_product(a, m.windows, [&](int64_t w, int8_t* buf) -> const int8_t* {
      if (w == 0) cursor = v;
      std::memset(buf, 0, 64);
      for (uint64_t mask = masks[w]; mask; mask &= mask - 1) buf[__builtin_ctzll(mask)] = int8_t(int(*cursor++) - 128);
      return buf;
    }, m.scales[size_t(r)], r, y, ldy);
  }
}

}  // namespace

const Int8Kernels kInt8Avx2 = {"avx2", dense, nm, bitmap, bitmap_f16_scalar, nullptr};

}  // namespace upg::kernels

#pragma GCC pop_options
