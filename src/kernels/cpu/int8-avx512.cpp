// The int8 kernels for AVX-512 with VNNI (vpdpbusd), VBMI (vpermb, vpermi2b,
// vpmultishiftqb) and VBMI2 (vpexpandb/w): Ice Lake, Sapphire Rapids, Zen 4 and later.
//
// Every kernel walks one row at a time over 64-byte weight vectors and runs up to four
// tokens against each vector while it sits in a register (prefill and batches reuse it).
// vpdpbusd multiplies unsigned activations (q + 128) by signed weights; the +128 is taken
// back once per row from the block sums computed at load (int8-kernels.h), except in the
// dense kernel, which streams weights used in place and is bound by memory anyway: it
// starts each sum at -128 * sum(w), one more vpdpbusd per weight vector.
// Sums alternate between two accumulators so consecutive windows do not wait on one
// FMA's latency.
#include <immintrin.h>

#include <algorithm>
#include <bit>

#include "kernels/cpu/int8-kernels.h"

// After the includes, so only this file's own code is built for AVX-512 (a standard
// library template instantiated here must not leak AVX-512 code into other files).
#pragma GCC push_options
// GCC 12's own _mm512_undefined_* helpers (casts, reductions) trip this warning.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx512vbmi2,fma,f16c,popcnt,bmi2")

namespace upg::kernels {
namespace {

constexpr int kTile = 8;  // tokens per pass over a row

// -128 * (sum of each 4-byte group of w): the starting value of a token's vpdpbusd.
inline __m512i offset_start(__m512i w) {
  return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), w));
}

inline uint64_t low_bits(int64_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

// Accumulators per token: one chain per token is enough ILP once a tile has four
// tokens; a lone token alternates two so consecutive windows do not wait on one FMA.
template <int NT>
constexpr int kAcc = NT >= 4 ? 1 : 2;

template <int A, int NT>
inline float total(const __m512 (&f)[A][NT], int j) {
  __m512 t = f[0][j];
  for (int a = 1; a < A; ++a) t = _mm512_add_ps(t, f[a][j]);
  return _mm512_reduce_add_ps(t);
}

// -128 * sum_b scale[b] * sums[b] over n blocks: what the +128 offset added to a row.
inline float offset_correction(const int16_t* sums, const float* scale, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n; b += 16) {
    const __mmask16 k = __mmask16(low_bits(n - b));
    const __m512 s = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(k, sums + b)));
    acc = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(k, scale + b), acc);
  }
  return -128.0f * _mm512_reduce_add_ps(acc);
}

template <int NT>
void dense_tile(const DenseI8& m, const QuantizedActs& a, int64_t t0, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t nb = (m.cols + 63) / 64;
  const uint64_t tail = low_bits(m.cols - (nb - 1) * 64);
  const uint8_t* q[NT];
  const float* sx[NT];
  for (int j = 0; j < NT; ++j) q[j] = a.row(t0 + j), sx[j] = a.block_scales(t0 + j);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* w = m.w + r * m.cols;
    constexpr int A = kAcc<NT>;
    __m512 f[A][NT];
    for (int a = 0; a < A; ++a)
      for (int j = 0; j < NT; ++j) f[a][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      // Only the last vector may run past the row; a masked load reads nothing beyond it.
      const __m512i wv = b + 1 < nb ? _mm512_loadu_si512(w + 64 * b) : _mm512_maskz_loadu_epi8(tail, w + 64 * b);
      const __m512i start = offset_start(wv);
      for (int j = 0; j < NT; ++j) {
        const __m512i s = _mm512_dpbusd_epi32(start, _mm512_loadu_si512(q[j] + 64 * b), wv);
        f[b % A][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(sx[j][b]), f[b % A][j]);
      }
    }
    for (int j = 0; j < NT; ++j)
      y[(t0 + j) * ldy + r] = total(f, j) * m.scales[r];
  }
}

// N:M with N/M = 1/2 (2:4, 4:8): 64 values span 128 columns, two registers of activations,
// and vpermi2b gathers the 64 activations the values multiply. Each value's byte index in
// that window is (k / N) * M + position, the position unpacked from log2(M) bits by
// vpermb (bytes to their qword) and vpmultishiftqb (bits to their byte).
template <int N, int M, int NT>
void nm_tile(const format::CompressedMatrix& m, const int16_t* block_sums, const QuantizedActs& a, int64_t t0,
             int64_t r0, int64_t r1, float* y, int64_t ldy) {
  constexpr int bits = M == 4 ? 2 : 3;
  const int64_t per_row = format::nm_values_per_row(m.cols, N, M);
  const int64_t pos_bytes = format::nm_position_bytes_per_row(m.cols, N, M);
  const int64_t chunks = (per_row + 63) / 64;
  alignas(64) uint8_t perm[64], shift[64], base[64];
  for (int l = 0; l < 64; ++l) {
    perm[l] = uint8_t((l / 8) * bits + l % 8);
    shift[l] = uint8_t((l % 8) * bits);
    base[l] = uint8_t((l / N) * M);
  }
  const __m512i vperm = _mm512_load_si512(perm), vshift = _mm512_load_si512(shift), vbase = _mm512_load_si512(base);
  const __m512i field = _mm512_set1_epi8(char(M - 1));
  const int64_t blocks = (m.cols + 63) / 64;
  // Lanes 0-7 of a sum cover the window's first 64 columns (one activation block), 8-15
  // the next: pair scales hold the two block scales in that order.
  const uint8_t* q[NT];
  const float *sx[NT], *pairs[NT];
  for (int j = 0; j < NT; ++j)
    q[j] = a.row(t0 + j), sx[j] = a.block_scales(t0 + j), pairs[j] = a.window_pair_scales(t0 + j);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* vals = m.nm.values.data() + r * per_row;
    const uint8_t* pos = m.nm.positions.data() + r * pos_bytes;
    constexpr int A = kAcc<NT>;
    __m512 f[A][NT];
    for (int a = 0; a < A; ++a)
      for (int j = 0; j < NT; ++j) f[a][j] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t nv = std::min<int64_t>(64, per_row - 64 * c);
      const __m512i wv = _mm512_maskz_loadu_epi8(low_bits(nv), vals + 64 * c);
      const __m512i pv = _mm512_maskz_loadu_epi8(low_bits((nv * bits + 7) / 8), pos + 8 * bits * c);
      const __m512i idx = _mm512_add_epi8(
          _mm512_and_si512(_mm512_multishift_epi64_epi8(vshift, _mm512_permutexvar_epi8(vperm, pv)), field), vbase);
      for (int j = 0; j < NT; ++j) {
        const uint8_t* xw = q[j] + 128 * c;
        const __m512i g = _mm512_permutex2var_epi8(_mm512_loadu_si512(xw), idx, _mm512_loadu_si512(xw + 64));
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), g, wv);
        f[c % A][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_loadu_ps(pairs[j] + 16 * c), f[c % A][j]);
      }
    }
    const int16_t* sums = block_sums + r * blocks;
    for (int j = 0; j < NT; ++j)
      y[(t0 + j) * ldy + r] =
          (total(f, j) + offset_correction(sums, sx[j], blocks)) *
          m.scales[size_t(r)];
  }
}

// Bitmap windows: vpexpandb puts a window's kept values on their columns (zeros between),
// and the window multiplies the activations in place.
template <int NT>
void bitmap_tile(const BitmapMatrix& m, const QuantizedActs& a, int64_t t0, int64_t r0, int64_t r1, float* y,
                 int64_t ldy) {
  const uint8_t* q[NT];
  const float* sx[NT];
  for (int j = 0; j < NT; ++j) q[j] = a.row(t0 + j), sx[j] = a.block_scales(t0 + j);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* v = m.values.data() + m.row_start[size_t(r)];
    const uint64_t* masks = m.masks.data() + r * m.windows;
    constexpr int A = kAcc<NT>;
    __m512 f[A][NT];
    for (int a = 0; a < A; ++a)
      for (int j = 0; j < NT; ++j) f[a][j] = _mm512_setzero_ps();
    for (int64_t w = 0; w < m.windows; ++w) {
      const uint64_t mask = masks[w];
      const __m512i wv = _mm512_maskz_expand_epi8(mask, _mm512_loadu_si512(v));
      v += std::popcount(mask);
      for (int j = 0; j < NT; ++j) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(q[j] + 64 * w), wv);
        f[w % A][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(sx[j][w]), f[w % A][j]);
      }
    }
    const int16_t* sums = m.block_sums.data() + r * m.windows;
    for (int j = 0; j < NT; ++j)
      y[(t0 + j) * ldy + r] =
          (total(f, j) + offset_correction(sums, sx[j], m.windows)) *
          m.scales[size_t(r)];
  }
}

// fp16 bitmap windows (prime, codebook) against fp32 activations: vpexpandw per 32
// columns, vcvtph2ps, FMA.
template <int NT>
void bitmap_f16_tile(const BitmapMatrix& m, const float* x, int64_t t0, int64_t r0, int64_t r1, float* y,
                     int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* v = m.values16.data() + m.row_start[size_t(r)];
    const uint64_t* masks = m.masks.data() + r * m.windows;
    __m512 f[4][NT];  // one accumulator per quarter window: four independent FMA chains
    for (int p = 0; p < 4; ++p)
      for (int j = 0; j < NT; ++j) f[p][j] = _mm512_setzero_ps();
    for (int64_t w = 0; w < m.windows; ++w) {
      const uint64_t mask = masks[w];
      const __m512i lo = _mm512_maskz_expand_epi16(__mmask32(mask), _mm512_loadu_si512(v));
      v += std::popcount(uint32_t(mask));
      const __m512i hi = _mm512_maskz_expand_epi16(__mmask32(mask >> 32), _mm512_loadu_si512(v));
      v += std::popcount(uint32_t(mask >> 32));
      const __m512 wq[4] = {_mm512_cvtph_ps(_mm512_castsi512_si256(lo)), _mm512_cvtph_ps(_mm512_extracti64x4_epi64(lo, 1)),
                            _mm512_cvtph_ps(_mm512_castsi512_si256(hi)), _mm512_cvtph_ps(_mm512_extracti64x4_epi64(hi, 1))};
      // Activations are not padded: the last window loads only the columns that exist.
      const bool full = 64 * w + 64 <= m.cols;
      const uint64_t cmask = low_bits(m.cols - 64 * w);
      for (int j = 0; j < NT; ++j) {
        const float* xw = x + (t0 + j) * m.cols + 64 * w;
        for (int p = 0; p < 4; ++p) {
          const __m512 xv = full ? _mm512_loadu_ps(xw + 16 * p) : _mm512_maskz_loadu_ps(__mmask16(cmask >> (16 * p)), xw + 16 * p);
          f[p][j] = _mm512_fmadd_ps(wq[p], xv, f[p][j]);
        }
      }
    }
    for (int j = 0; j < NT; ++j)
      y[(t0 + j) * ldy + r] =
          _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(f[0][j], f[1][j]), _mm512_add_ps(f[2][j], f[3][j]))) *
          m.scales[size_t(r)];
  }
}

// Runs Tile<NT> over the tokens in groups of kTile, the remainder with a smaller tile.
template <template <int> class Tile, class... Args>
void over_tokens(int64_t n_tokens, Args&&... args) {
  int64_t t = 0;
  for (; t + kTile <= n_tokens; t += kTile) Tile<kTile>::run(t, args...);
  if (n_tokens - t >= 4) {
    Tile<4>::run(t, args...);
    t += 4;
  }
  switch (n_tokens - t) {
    case 3: Tile<3>::run(t, args...); break;
    case 2: Tile<2>::run(t, args...); break;
    case 1: Tile<1>::run(t, args...); break;
    default: break;
  }
}

template <int NT>
struct DenseTile {
  static void run(int64_t t0, const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y,
                  int64_t ldy) {
    dense_tile<NT>(m, a, t0, r0, r1, y, ldy);
  }
};
template <int NT>
struct BitmapTile {
  static void run(int64_t t0, const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y,
                  int64_t ldy) {
    bitmap_tile<NT>(m, a, t0, r0, r1, y, ldy);
  }
};
template <int NT>
struct BitmapF16Tile {
  static void run(int64_t t0, const BitmapMatrix& m, const float* x, int64_t r0, int64_t r1, float* y, int64_t ldy) {
    bitmap_f16_tile<NT>(m, x, t0, r0, r1, y, ldy);
  }
};
template <int N, int M>
struct NMTiles {
  template <int NT>
  struct Tile {
    static void run(int64_t t0, const format::CompressedMatrix& m, const int16_t* sums, const QuantizedActs& a,
                    int64_t r0, int64_t r1, float* y, int64_t ldy) {
      nm_tile<N, M, NT>(m, sums, a, t0, r0, r1, y, ldy);
    }
  };
};

void dense(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  over_tokens<DenseTile>(a.n_tokens, m, a, r0, r1, y, ldy);
}

void nm(const format::CompressedMatrix& m, const int16_t* sums, const QuantizedActs& a, int64_t r0, int64_t r1,
        float* y, int64_t ldy) {
  if (m.nm.n == 2 && m.nm.m == 4) return over_tokens<NMTiles<2, 4>::Tile>(a.n_tokens, m, sums, a, r0, r1, y, ldy);
  if (m.nm.n == 4 && m.nm.m == 8) return over_tokens<NMTiles<4, 8>::Tile>(a.n_tokens, m, sums, a, r0, r1, y, ldy);
  kInt8Avx2.nm(m, sums, a, r0, r1, y, ldy);  // other N:M: windows expanded one by one
}

void bitmap(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  over_tokens<BitmapTile>(a.n_tokens, m, a, r0, r1, y, ldy);
}

void bitmap_f16(const BitmapMatrix& m, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  over_tokens<BitmapF16Tile>(n_tokens, m, x, r0, r1, y, ldy);
}

}  // namespace

const Int8Kernels kInt8Avx512 = {"avx512-vnni", dense, nm, bitmap, bitmap_f16};

}  // namespace upg::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
