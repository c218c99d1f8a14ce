// The int8 kernels for AVX2 (Haswell, Zen 1-3). AVX2 has no int8 dot product with an
// int32 sum, so a 64-column window is multiplied with vpmaddubsw (u8 x s8 pairs to s16)
// and vpmaddwd (s16 pairs to s32). vpmaddubsw saturates past 32767, so the unsigned
// operand is |w| (at most 128) and the activation takes w's sign: 2 * 128 * 127 fits.
// AVX2 has no byte expand or cross-lane byte permute: 2:4 gathers its activations by
// in-lane shuffles, and bitmap windows are expanded by shuffles from a table
// (docs/KERNELS.md, "AVX2").
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "kernels/cpu/int8-kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,popcnt,bmi,bmi2")

namespace upg::kernels {
namespace {

static_assert(kActBlock == 32, "one 32-byte half per activation block");

// Software prefetch distance of each row's weight stream, in bytes, as in the AVX-512
// kernels. On this project's AVX2 host (2 threads, about 18 GB/s) it took the 2:4 kernel
// from 1.07-1.17x dense int8 to 1.41-1.56x, while dense int8 moved within the noise
// (interleaved medians, docs/BENCHMARKS.md). A prefetch past the end of an array never
// faults.
constexpr int64_t kAhead = 8192;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Adds row i's and token t's sum over blocks [0, nb) of src[i] (block b at src[i] + 32 b)
// to acc[i][t], each block's int32 sum scaled by the token's block b0 + b scale. R rows
// share every activation load, and each (row, token) pair has its own accumulator: with
// one accumulator per row the FMA latency chain limited dense int8 to 13.7 GB/s.
template <int R, int T>
inline void accumulate(const int8_t* const (&src)[R], int64_t nb, int64_t b0, const QuantizedActs& a, int64_t t0,
                       __m256 (&acc)[R][T]) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i x[T];
    __m256 s[T];
    for (int t = 0; t < T; ++t) {
      x[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.signed_row(t0 + t) + 32 * (b0 + b)));
      s[t] = _mm256_broadcast_ss(a.block_scales(t0 + t) + b0 + b);
    }
    for (int i = 0; i < R; ++i) {
      if (b % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(src[i] + 32 * b + kAhead), _MM_HINT_T0);
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[i] + 32 * b));
      const __m256i aw = _mm256_abs_epi8(wv);
      for (int t = 0; t < T; ++t) {
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x[t], wv)), ones);
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s[t], acc[i][t]);
      }
    }
  }
}

// Rows [r, r + R) of a dense int8 matrix against tokens [t0, t0 + T). A last partial
// block is copied into zero-padded buffers, so no load runs past a row's end.
template <int R, int T>
void rows_tokens(const DenseI8& m, int64_t r, const QuantizedActs& a, int64_t t0, float* y, int64_t ldy) {
  __m256 acc[R][T];
  for (auto& row : acc)
    for (auto& v : row) v = _mm256_setzero_ps();
  const int64_t full = m.cols / 32, rest = m.cols - 32 * full;
  const int8_t* src[R];
  for (int i = 0; i < R; ++i) src[i] = m.w + (r + i) * m.cols;
  accumulate<R, T>(src, full, 0, a, t0, acc);
  if (rest) {
    alignas(32) int8_t tail[R][32] = {};
    for (int i = 0; i < R; ++i) {
      std::memcpy(tail[i], src[i] + 32 * full, size_t(rest));
      src[i] = tail[i];
    }
    accumulate<R, T>(src, 1, full, a, t0, acc);
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) y[(t0 + t) * ldy + r + i] = hsum(acc[i][t]) * m.scales[r + i];
}

// R rows against every token, two per pass so that they share each weight load; the rows
// stay in L1 while the tokens go by. 4 rows x 2 tokens of accumulators plus the operands
// fill the 16 registers.
template <int R>
void rows_all_tokens(const DenseI8& m, int64_t r, const QuantizedActs& a, float* y, int64_t ldy) {
  int64_t t0 = 0;
  for (; t0 + 2 <= a.n_tokens; t0 += 2) rows_tokens<R, 2>(m, r, a, t0, y, ldy);
  if (t0 < a.n_tokens) rows_tokens<R, 1>(m, r, a, t0, y, ldy);
}

void dense(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) rows_all_tokens<4>(m, r, a, y, ldy);
  for (; r < r1; ++r) rows_all_tokens<1>(m, r, a, y, ldy);
}

// Byte expansion for AVX2, which has no vpexpandb: for each 8-bit mask, the vpshufb
// control that moves a granule's values to its set bits (0x80, zero, elsewhere), as 8
// bytes; and for each popcount 0-8 of a 16-column granule's low half, a vector adding it
// to the high half's indices (0x80 + 8 still has bit 7: still zero).
struct ExpandTables {
  uint64_t control[256];
  __m128i high_add[9];
  ExpandTables() {
    for (int m = 0; m < 256; ++m) {
      uint64_t c = 0;
      for (int i = 0, rank = 0; i < 8; ++i) c |= uint64_t(m >> i & 1 ? rank++ : 0x80) << (8 * i);
      control[m] = c;
    }
    for (int n = 0; n <= 8; ++n) high_add[n] = _mm_set_epi64x(int64_t(0x0101010101010101ULL * uint64_t(n)), 0);
  }
};

// Row r's 64-column windows as dense signed int8 into out[64 * windows]: 16 columns per
// vpshufb over 16 value bytes loaded at the row's cursor (BitmapMatrix pads its values, so
// the load stays in bounds).
inline void expand_row(const BitmapMatrix& m, int64_t r, const ExpandTables& t, int8_t* out) {
  const uint8_t* v = m.values.data() + m.row_start[size_t(r)];
  const uint64_t* masks = m.masks.data() + r * m.windows;
  const __m128i flip = _mm_set1_epi8(char(0x80));  // + 128 storage to signed
  for (int64_t w = 0; w < m.windows; ++w) {
    const uint64_t mask = masks[w];
    _mm_prefetch(reinterpret_cast<const char*>(v + kAhead), _MM_HINT_T0);
    for (int j = 0; j < 4; ++j) {
      const unsigned lo = unsigned(mask >> (16 * j)) & 0xFF, hi = unsigned(mask >> (16 * j + 8)) & 0xFF;
      const int n_lo = std::popcount(lo);
      const __m128i ctrl =
          _mm_add_epi8(_mm_set_epi64x(int64_t(t.control[hi]), int64_t(t.control[lo])), t.high_add[n_lo]);
      const __m128i vals = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v)), flip);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 64 * w + 16 * j), _mm_shuffle_epi8(vals, ctrl));
      v += n_lo + std::popcount(hi);
    }
  }
}

// Bitmap windows (MdCSR): R rows at a time are expanded into a per-thread buffer that
// stays in L1, and the dense kernel runs every token over it, so prefill expands each row
// once. The buffer grows on the first call only: no allocation in the decode loop.
void bitmap(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  static const ExpandTables tables;
  constexpr int R = 4;
  thread_local std::vector<int8_t> buf;
  const int64_t width = 64 * m.windows;
  if (buf.size() < size_t(R * width)) buf.resize(size_t(R * width));
  for (int64_t r = r0; r < r1; r += R) {
    const int64_t n = std::min<int64_t>(R, r1 - r);
    for (int64_t i = 0; i < n; ++i) {
      expand_row(m, r + i, tables, buf.data() + i * width);
    }
    // Rows of `width` columns: the padding columns multiply activation padding (zero).
    const DenseI8 d{buf.data(), m.scales.data() + r, n, width};
    if (n == R) rows_all_tokens<R>(d, 0, a, y + r, ldy);
    else
      for (int64_t i = 0; i < n; ++i) rows_all_tokens<1>(d, i, a, y + r, ldy);
  }
}

// Prime and codebook values (fp16 bitmap windows, fp32 activations): 8 columns per
// vpshufb, whose 16-byte control for each mask byte moves 2-byte values to their set
// bits, then vcvtph2ps. A row is expanded once into fp32, and every token's dot product
// runs over it. The scalar kernel this replaced took 13x the int8 bitmap's time.
struct ExpandTables16 {
  __m128i control[256];
  ExpandTables16() {
    for (int m = 0; m < 256; ++m) {
      alignas(16) uint8_t c[16];
      for (int i = 0, rank = 0; i < 8; ++i) {
        const bool kept = m >> i & 1;
        c[2 * i] = uint8_t(kept ? 2 * rank : 0x80);
        c[2 * i + 1] = uint8_t(kept ? 2 * rank + 1 : 0x80);
        rank += kept;
      }
      control[m] = _mm_load_si128(reinterpret_cast<const __m128i*>(c));
    }
  }
};

// sum_c a[c] * b[c] over n floats; b may end at n (activations are not padded).
inline float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t c = 0;
  for (; c + 32 <= n; c += 32)
    for (int j = 0; j < 4; ++j)
      acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8 * j), _mm256_loadu_ps(b + c + 8 * j), acc[j]);
  for (; c + 8 <= n; c += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), acc[0]);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; c < n; ++c) sum += a[c] * b[c];
  return sum;
}

void bitmap_f16(const BitmapMatrix& m, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  static const ExpandTables16 tables;
  thread_local std::vector<float> buf;
  if (buf.size() < size_t(64 * m.windows)) buf.resize(size_t(64 * m.windows));
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* v = m.values16.data() + m.row_start[size_t(r)];
    const auto* mb = reinterpret_cast<const uint8_t*>(m.masks.data() + r * m.windows);
    for (int64_t j = 0; j < 8 * m.windows; ++j) {
      if (j % 4 == 0) _mm_prefetch(reinterpret_cast<const char*>(v) + kAhead, _MM_HINT_T0);
      const __m128i h = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v)), tables.control[mb[j]]);
      _mm256_storeu_ps(buf.data() + 8 * j, _mm256_cvtph_ps(h));
      v += std::popcount(unsigned(mb[j]));
    }
    for (int64_t t = 0; t < n_tokens; ++t)
      y[t * ldy + r] = dot_f32(buf.data(), x + t * m.cols, m.cols) * m.scales[size_t(r)];
  }
}

// The constants of the 2:4 gather (Nm24Rows): for each register byte, its group's offset
// inside the 16-column activation lane it reads, plus 0x80 (vpshufb: zero) in the
// shuffle of the other 32 columns; and the vpsrlvq shifts that bring each 64-bit lane's
// positions to the bottom of its bytes.
struct Nm24Consts {
  __m256i base0, base1, shifts;
  Nm24Consts() {
    alignas(32) uint8_t b0[32], b1[32];
    for (int b = 0; b < 32; ++b) {
      const int dword = b % 16 / 4, e = b % 4;
      const int src = dword % 2, offset = 4 * (2 * (dword / 2) + e / 2);
      b0[b] = uint8_t(offset + (src == 0 ? 0 : 0x80));
      b1[b] = uint8_t(offset + (src == 1 ? 0 : 0x80));
    }
    base0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b0));
    base1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b1));
    shifts = _mm256_setr_epi64x(0, 2, 4, 6);
  }
};

// Rows [r, r + R) of a 2:4 matrix against token t; the rows share the activation loads
// and the scale broadcast. Per row and 64 columns: 3 instructions unpack the positions,
// 2 make the shuffle controls, 3 gather the 32 activations, and 6 multiply and scale.
template <int R>
void nm24_rows(const Nm24Rows& m, int64_t r, const QuantizedActs& a, int64_t t, const Nm24Consts& c, float* y,
               int64_t ldy) {
  const __m256i three = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
  __m256 acc[R];
  for (auto& v : acc) v = _mm256_setzero_ps();
  const int8_t* xs = a.signed_row(t);
  const float* bs = a.block_scales(t);
  for (int64_t w = 0; w < m.windows; ++w) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 64 * w));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 64 * w + 32));
    // Block scales s0 s1 s0 s1 ...: dword parity is the block.
    const __m256 s = _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(bs + 2 * w)));
    for (int i = 0; i < R; ++i) {
      const int64_t rw = (r + i) * m.windows + w;
      const __m256i pos = _mm256_and_si256(
          _mm256_srlv_epi64(_mm256_set1_epi64x(int64_t(m.positions[size_t(rw)])), c.shifts), three);
      const __m256i g = _mm256_or_si256(_mm256_shuffle_epi8(x0, _mm256_add_epi8(pos, c.base0)),
                                        _mm256_shuffle_epi8(x1, _mm256_add_epi8(pos, c.base1)));
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m.values.data() + 32 * rw));
      if (w % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(m.values.data() + 32 * rw + kAhead), _MM_HINT_T0);
      if (w % 8 == 0) _mm_prefetch(reinterpret_cast<const char*>(m.positions.data() + rw + kAhead / 4), _MM_HINT_T0);
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(g, v)), ones);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[i]);
    }
  }
  for (int i = 0; i < R; ++i) y[t * ldy + r + i] = hsum(acc[i]) * m.scales[size_t(r + i)];
}

void nm24(const Nm24Rows& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  static const Nm24Consts c;
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4)
    for (int64_t t = 0; t < a.n_tokens; ++t) nm24_rows<4>(m, r, a, t, c, y, ldy);
  for (; r < r1; ++r)
    for (int64_t t = 0; t < a.n_tokens; ++t) nm24_rows<1>(m, r, a, t, c, y, ldy);
}

}  // namespace

// N:M in the file's layout does not run on AVX2 (2:4 as Nm24Rows, the rest as bitmap
// windows); the table's entry is the scalar kernel.
const Int8Kernels kInt8Avx2 = {"avx2", dense, nm_scalar, bitmap, bitmap_f16, nullptr, nm24};

}  // namespace upg::kernels

#pragma GCC pop_options
