// The int8 kernels for AVX-512 with VNNI (vpdpbusd), VBMI (vpermb, vpermi2b,
// vpmultishiftqb) and VBMI2 (vpexpandb/w): Ice Lake, Sapphire Rapids, Zen 4 and later.
//
// Every kernel walks one row at a time over 64-byte weight vectors and runs up to eight
// tokens against each vector while it sits in a register (prefill and batches reuse it).
// vpdpbusd multiplies unsigned activations (q + 128) by signed weights; each sum starts
// at -128 * sum(w) to take the offset back (one more vpdpbusd per weight vector, shared
// by the tile's tokens, and no extra bytes to stream).
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

static_assert(kActBlock == 32, "the lane scale vectors assume two blocks per 64-byte vector");

constexpr int kTile = 8;  // tokens per pass over a row

// Lane scales of a 64-byte sum from the block scales it spans, read with one narrow load
// and a permute: Zen 4 loads one 64-byte vector per cycle, and the kernels already load
// two per weight vector (weights, activations), so a third would set the pace.
// Two blocks (dense, bitmap: lanes 0-7, 8-15) or four (N:M chunks: 4 lanes each).
inline __m512 two_block_scales(const float* s) {
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(s)))));
}
inline __m512 four_block_scales(const float* s) {
  const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(s)));
}

// -128 * (sum of each 4-byte group of w): the starting value of a token's vpdpbusd, so
// the sum it ends with is sum w * (q - 128). Computed once per weight vector, shared by
// the tile's tokens.
inline __m512i offset_start(__m512i w) {
  return _mm512_sub_epi32(_mm512_setzero_si512(),
                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), w));
}

inline uint64_t low_bits(int64_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

// Accumulators per token: one chain per token is enough ILP once a tile has four
// tokens; a lone token alternates two so consecutive vectors do not wait on one FMA.
template <int NT>
constexpr int kAcc = NT >= 4 ? 1 : 2;

template <int A, int NT>
inline float total(const __m512 (&f)[A][NT], int j) {
  __m512 t = f[0][j];
  for (int a = 1; a < A; ++a) t = _mm512_add_ps(t, f[a][j]);
  return _mm512_reduce_add_ps(t);
}

// Where a token's vpdpbusd sum starts, to take back the +128 offset of its unsigned
// operand. Signed weights against activations + 128: -128 * sum(w) per lane, from the
// weight vector, once for all tokens.
struct WeightOffset {
  static constexpr bool unsigned_weights = false;
  __m512i shared(__m512i wv) const { return offset_start(wv); }
  __m512i token(int, int64_t, __m512i shared) const { return shared; }
};

// The shared skeleton of every int8 kernel: for each row and each of its weight vectors
// (vector(i) yields 64 weights, in the lane order gather(j, i) yields token j's
// activations; one of the two unsigned), sum their products per lane from the start
// Offset gives, scale by the lane scales scales(j, i) and accumulate. A layout only says
// how its vectors and gathers look.
template <int NT, class Offset, class Begin, class Vector, class Gather, class Scales>
inline void rows_tile(int64_t r0, int64_t r1, int64_t n_vectors, const float* row_scales, float* y, int64_t ldy,
                      int64_t t0, const Offset& offset, Begin&& begin_row, Vector&& vector, Gather&& gather,
                      Scales&& scales) {
  constexpr int A = kAcc<NT>;
  for (int64_t r = r0; r < r1; ++r) {
    begin_row(r);
    __m512 f[A][NT];
    for (int a = 0; a < A; ++a)
      for (int j = 0; j < NT; ++j) f[a][j] = _mm512_setzero_ps();
    auto step = [&](int64_t i, __m512(&acc)[NT]) {
      const __m512i wv = vector(i);
      const __m512i shared = offset.shared(wv);
      for (int j = 0; j < NT; ++j) {
        const __m512i s = Offset::unsigned_weights ? _mm512_dpbusd_epi32(offset.token(j, i, shared), wv, gather(j, i))
                                                   : _mm512_dpbusd_epi32(offset.token(j, i, shared), gather(j, i), wv);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scales(j, i), acc[j]);
      }
    };
    // Unrolled by A so each accumulator has a fixed register (an index computed at run
    // time sends them through the stack, a store-to-load chain per vector).
    int64_t i = 0;
    for (; i + A <= n_vectors; i += A)
      for (int a = 0; a < A; ++a) step(i + a, f[a]);
    for (; i < n_vectors; ++i) step(i, f[0]);
    for (int j = 0; j < NT; ++j) y[(t0 + j) * ldy + r] = total(f, j) * row_scales[r];
  }
}

template <int NT>
void dense_tile(const DenseI8& m, const QuantizedActs& a, int64_t t0, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t nb = (m.cols + 63) / 64;
  const uint64_t tail = low_bits(m.cols - (nb - 1) * 64);
  const int8_t* w = nullptr;
  const uint8_t* xq[NT];
  const float* bs[NT];
  for (int j = 0; j < NT; ++j) xq[j] = a.row(t0 + j), bs[j] = a.block_scales(t0 + j);
  rows_tile<NT>(
      r0, r1, nb, m.scales, y, ldy, t0, WeightOffset{}, [&](int64_t r) { w = m.w + r * m.cols; },
      // Only the last vector may run past the row; a masked load reads nothing beyond it.
      [&](int64_t b) { return b + 1 < nb ? _mm512_loadu_si512(w + 64 * b) : _mm512_maskz_loadu_epi8(tail, w + 64 * b); },
      [&](int j, int64_t b) { return _mm512_loadu_si512(xq[j] + 64 * b); },
      [&](int j, int64_t b) { return two_block_scales(bs[j] + 2 * b); });
}

// N:M with N/M = 1/2 (2:4, 4:8): 64 values span 128 columns, two registers of activations,
// and vpermi2b gathers the 64 activations the values multiply. Each value's byte index in
// that window is (k / N) * M + position, the position unpacked from log2(M) bits by
// vpermb (bytes to their qword) and vpmultishiftqb (bits to their byte). Lane l of a sum
// covers values 4l..4l+3, all inside block l / 4 of the window.
template <int N, int M, int NT>
void nm_tile(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t t0, int64_t r0, int64_t r1, float* y,
             int64_t ldy) {
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
  const int8_t* vals = nullptr;
  const uint8_t* pos = nullptr;
  __m512i idx = _mm512_setzero_si512();
  const uint8_t* xq[NT];
  const float* bs[NT];
  for (int j = 0; j < NT; ++j) xq[j] = a.row(t0 + j), bs[j] = a.block_scales(t0 + j);
  // Only the last chunk of a row may be partial: its loads are masked.
  const int64_t full = per_row / 64;
  const uint64_t tail_vals = low_bits(per_row - 64 * full), tail_pos = low_bits(((per_row - 64 * full) * bits + 7) / 8);
  const uint64_t chunk_pos = low_bits(8 * bits);
  rows_tile<NT>(
      r0, r1, chunks, m.scales.data(), y, ldy, t0, WeightOffset{},
      [&](int64_t r) {
        vals = m.nm.values.data() + r * per_row;
        pos = m.nm.positions.data() + r * pos_bytes;
      },
      [&](int64_t c) {
        const bool last = c == full;
        const __m512i pv = _mm512_maskz_loadu_epi8(last ? tail_pos : chunk_pos, pos + 8 * bits * c);
        idx = _mm512_add_epi8(
            _mm512_and_si512(_mm512_multishift_epi64_epi8(vshift, _mm512_permutexvar_epi8(vperm, pv)), field), vbase);
        return last ? _mm512_maskz_loadu_epi8(tail_vals, vals + 64 * c) : _mm512_loadu_si512(vals + 64 * c);
      },
      [&](int j, int64_t c) {
        const uint8_t* xw = xq[j] + 128 * c;
        return _mm512_permutex2var_epi8(_mm512_loadu_si512(xw), idx, _mm512_loadu_si512(xw + 64));
      },
      [&](int j, int64_t c) { return four_block_scales(bs[j] + 4 * c); });
}

// Unsigned weights (+ 128) against signed activations: -128 * sum(q) per lane, from the
// activations, precomputed once per token (QuantizedActs::lane_offsets).
template <int NT>
struct ActivationOffset {
  static constexpr bool unsigned_weights = true;
  const int32_t* offsets[NT];
  ActivationOffset(const QuantizedActs& a, int64_t t0) {
    for (int j = 0; j < NT; ++j) offsets[j] = a.vector_lane_offsets(t0 + j);
  }
  __m512i shared(__m512i) const { return _mm512_setzero_si512(); }
  __m512i token(int j, int64_t w, __m512i) const { return _mm512_loadu_si512(offsets[j] + 16 * w); }
};

// Bitmap windows: vpexpandb puts a window's kept values (+ 128) on their columns over a
// background of 128 (weight 0), and the window multiplies the activations in place.
template <int NT>
void bitmap_tile(const BitmapMatrix& m, const QuantizedActs& a, int64_t t0, int64_t r0, int64_t r1, float* y,
                 int64_t ldy) {
  const uint8_t* v = nullptr;
  const uint64_t* masks = nullptr;
  const __m512i zero_weight = _mm512_set1_epi8(char(0x80));
  const int8_t* xs[NT];
  const float* bs[NT];
  for (int j = 0; j < NT; ++j) xs[j] = a.signed_row(t0 + j), bs[j] = a.block_scales(t0 + j);
  rows_tile<NT>(
      r0, r1, m.windows, m.scales.data(), y, ldy, t0, ActivationOffset<NT>(a, t0),
      [&](int64_t r) {
        v = m.values.data() + m.row_start[size_t(r)];
        masks = m.masks.data() + r * m.windows;
      },
      [&](int64_t w) {
        const uint64_t mask = masks[w];
        const __m512i wv = _mm512_mask_expand_epi8(zero_weight, mask, _mm512_loadu_si512(v));
        v += std::popcount(mask);
        return wv;
      },
      [&](int j, int64_t w) { return _mm512_loadu_si512(xs[j] + 64 * w); },
      [&](int j, int64_t w) { return two_block_scales(bs[j] + 2 * w); });
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
          const __m512 xv =
              full ? _mm512_loadu_ps(xw + 16 * p) : _mm512_maskz_loadu_ps(__mmask16(cmask >> (16 * p)), xw + 16 * p);
          f[p][j] = _mm512_fmadd_ps(wq[p], xv, f[p][j]);
        }
      }
    }
    for (int j = 0; j < NT; ++j)
      y[(t0 + j) * ldy + r] = total(f, j) * m.scales[size_t(r)];
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
    static void run(int64_t t0, const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1,
                    float* y, int64_t ldy) {
      nm_tile<N, M, NT>(m, a, t0, r0, r1, y, ldy);
    }
  };
};

void dense(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  over_tokens<DenseTile>(a.n_tokens, m, a, r0, r1, y, ldy);
}

void nm(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  if (m.nm.n == 2 && m.nm.m == 4) return over_tokens<NMTiles<2, 4>::Tile>(a.n_tokens, m, a, r0, r1, y, ldy);
  if (m.nm.n == 4 && m.nm.m == 8) return over_tokens<NMTiles<4, 8>::Tile>(a.n_tokens, m, a, r0, r1, y, ldy);
  kInt8Avx2.nm(m, a, r0, r1, y, ldy);  // other N:M: windows expanded one by one
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
