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
#include <cstring>
#include <vector>

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

// With a tile of tokens the vector math, not the loads, sets the pace: there the lane
// scales come from the precomputed table in one load and no permute.
template <int NT>
inline __m512 vector_scales(const QuantizedActs& a, int64_t t, const float* block_scales, int64_t v) {
  if constexpr (NT >= 4) return _mm512_loadu_ps(a.vector_lane_scales(t) + 16 * v);
  else return two_block_scales(block_scales + 2 * v);
}

// -128 * (sum of each 4-byte group of w): the starting value of a token's vpdpbusd, so
// the sum it ends with is sum w * (q - 128). Computed once per weight vector, shared by
// the tile's tokens.
inline __m512i offset_start(__m512i w) {
  return _mm512_sub_epi32(_mm512_setzero_si512(),
                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), w));
}

// How far ahead of its loads a decode kernel prefetches its weight stream. The hardware
// prefetcher alone left the kernels short of bandwidth on a Zen 5 host (one thread, 64 MB
// matrix from memory): dense int8 streamed 31 GB/s without and 38 with 8 KB, and the
// bitmap kernel 12 without and 53 with, because an expand waiting on a load that missed
// the caches holds up the core. A prefetch past the end of an array cannot fault.
constexpr int64_t kPrefetch = 8192;
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

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

// The shared skeleton of the row-major int8 kernels (dense, N:M): for each row and each
// of its weight vectors (vector(i) yields 64 signed weights, in the lane order gather(j, i)
// yields token j's activations + 128), sum their products per lane from -128 * sum(w)
// (taking the offset back; once per vector, shared by the tile's tokens), scale by the
// lane scales scales(j, i) and accumulate. A layout only says how its vectors and
// gathers look.
template <int NT, class Begin, class Vector, class Gather, class Scales>
inline void rows_tile(int64_t r0, int64_t r1, int64_t n_vectors, const float* row_scales, float* y, int64_t ldy,
                      int64_t t0, Begin&& begin_row, Vector&& vector, Gather&& gather, Scales&& scales) {
  constexpr int A = kAcc<NT>;
  for (int64_t r = r0; r < r1; ++r) {
    begin_row(r);
    __m512 f[A][NT];
    for (int a = 0; a < A; ++a)
      for (int j = 0; j < NT; ++j) f[a][j] = _mm512_setzero_ps();
    auto step = [&](int64_t i, __m512(&acc)[NT]) {
      const __m512i wv = vector(i);
      const __m512i start = offset_start(wv);
      for (int j = 0; j < NT; ++j) {
        const __m512i s = _mm512_dpbusd_epi32(start, gather(j, i), wv);
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
      r0, r1, nb, m.scales, y, ldy, t0, [&](int64_t r) { w = m.w + r * m.cols; },
      // Only the last vector may run past the row; a masked load reads nothing beyond it.
      [&](int64_t b) {
        prefetch(w + 64 * b + kPrefetch);
        return b + 1 < nb ? _mm512_loadu_si512(w + 64 * b) : _mm512_maskz_loadu_epi8(tail, w + 64 * b); },
      [&](int j, int64_t b) { return _mm512_loadu_si512(xq[j] + 64 * b); },
      [&](int j, int64_t b) { return vector_scales<NT>(a, t0 + j, bs[j], b); });
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
      r0, r1, chunks, m.scales.data(), y, ldy, t0,
      [&](int64_t r) {
        vals = m.nm.values.data() + r * per_row;
        pos = m.nm.positions.data() + r * pos_bytes;
      },
      [&](int64_t c) {
        const bool last = c == full;
        prefetch(vals + 64 * c + kPrefetch);
        prefetch(pos + 8 * bits * c + kPrefetch * bits / 8);
        const __m512i pv = _mm512_maskz_loadu_epi8(last ? tail_pos : chunk_pos, pos + 8 * bits * c);
        // (fields & (M - 1)) | base in one vpternlogd (0xEA = a & b | c): base is a
        // multiple of M, so the OR is the sum.
        idx = _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(vshift, _mm512_permutexvar_epi8(vperm, pv)), field,
                                        vbase, 0xEA);
        return last ? _mm512_maskz_loadu_epi8(tail_vals, vals + 64 * c) : _mm512_loadu_si512(vals + 64 * c);
      },
      [&](int j, int64_t c) {
        const uint8_t* xw = xq[j] + 128 * c;
        return _mm512_permutex2var_epi8(_mm512_loadu_si512(xw), idx, _mm512_loadu_si512(xw + 64));
      },
      [&](int j, int64_t c) {
        if constexpr (NT >= 4) return _mm512_loadu_ps(a.chunk_lane_scales(t0 + j) + 16 * c);
        else return four_block_scales(bs[j] + 4 * c);
      });
}

// 2:4 interleaved by 16 rows (NmRows16): lane i of every sum is row i of the group. Per
// 64-byte vector: the chunk's 12 code bytes, broadcast to each 128-bit lane, are spread
// to its two qwords (vpshufb); vpmultishiftqb brings each value's 3-bit pair to its byte,
// vpternlogd adds which of the 4 values it is, and a vpermb table turns that into the
// value's column among the chunk's 8. vpshufb picks those activations from an 8-byte
// broadcast, vpdpbusd sums; the +128 offset, the float conversion and the block scale
// wait for the end of each 32-column block (4 vectors).
template <int NT>
void nm_rows16_tile(const NmRows16& m, const QuantizedActs& a, int64_t t0, int64_t g0, int64_t g1, float* y,
                    int64_t ldy) {
  static constexpr uint8_t kFirst[6] = {0, 0, 0, 1, 1, 2}, kSecond[6] = {1, 2, 3, 2, 3, 3};
  alignas(64) uint8_t spread[64], ctrl[64], which[64], table[64];
  for (int p = 0; p < 64; ++p) {
    const int lane = p / 16, q = p % 16, k = q % 8, v = k % 4;
    // Bytes 0-5 stay, 6-11 move to 8-13, the rest read as zero.
    spread[p] = uint8_t(q < 6 ? q : q >= 8 && q < 14 ? q - 2 : 0x80);
    ctrl[p] = uint8_t(6 * (2 * lane + k / 4) + 3 * (v / 2));
    which[p] = uint8_t(v << 3);
    // table[pair | v << 3]: value v's column in the chunk.
    const int pair = p % 8, vv = p / 8;
    table[p] = pair < 6 && vv < 4 ? uint8_t(4 * (vv / 2) + (vv % 2 ? kSecond[pair] : kFirst[pair])) : 0;
  }
  const __m512i vspread = _mm512_load_si512(spread), vctrl = _mm512_load_si512(ctrl);
  const __m512i vwhich = _mm512_load_si512(which), vtable = _mm512_load_si512(table);
  const __m512i field = _mm512_set1_epi8(7), bias = _mm512_set1_epi8(char(0x80));
  const uint8_t* xq[NT];
  const float* bs[NT];
  for (int j = 0; j < NT; ++j) xq[j] = a.row(t0 + j), bs[j] = a.block_scales(t0 + j);
  const int64_t blocks = m.chunks / 4;
  for (int64_t g = g0; g < g1; ++g) {
    const int8_t* v = m.values.data() + g * m.chunks * 64;
    const uint8_t* codes = m.codes.data() + g * m.chunks * 12;
    __m512 f[NT];
    for (int j = 0; j < NT; ++j) f[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      __m512i off = _mm512_setzero_si512(), s[NT];
      for (int j = 0; j < NT; ++j) s[j] = _mm512_setzero_si512();
      prefetch(codes + 48 * b + kPrefetch * 12 / 64);  // 12 bytes of codes per 64 values
      for (int c = 0; c < 4; ++c) {
        const int64_t ch = 4 * b + c;
        prefetch(v + 64 * ch + kPrefetch);
        const __m512i w = _mm512_load_si512(v + 64 * ch);
        const __m512i cv = _mm512_shuffle_epi8(
            _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + 12 * ch))), vspread);
        // (pair & 7) | v << 3 in one vpternlogd (0xEA = a & b | c), then the table.
        const __m512i idx = _mm512_permutexvar_epi8(
            _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(vctrl, cv), field, vwhich, 0xEA), vtable);
        off = _mm512_dpbusd_epi32(off, bias, w);
        for (int j = 0; j < NT; ++j) {
          int64_t x8;
          std::memcpy(&x8, xq[j] + 8 * ch, 8);
          s[j] = _mm512_dpbusd_epi32(s[j], _mm512_shuffle_epi8(_mm512_set1_epi64(x8), idx), w);
        }
      }
      for (int j = 0; j < NT; ++j)
        f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s[j], off)), _mm512_set1_ps(bs[j][b]), f[j]);
    }
    const __m512 rs = _mm512_loadu_ps(m.scales.data() + 16 * g);
    const __mmask16 keep = __mmask16(low_bits(m.rows - 16 * g));
    for (int j = 0; j < NT; ++j) _mm512_mask_storeu_ps(y + (t0 + j) * ldy + 16 * g, keep, _mm512_mul_ps(f[j], rs));
  }
}

// Bitmap tiles of 16 rows (BitmapRows16): an expand puts a tile's kept values on their
// places, and one dot product per token multiplies them by the tile's activations,
// broadcast: lane i gathers row i. int8: vpexpandb over 128 (weight 0; values are stored
// + 128) and vpdpbusd against 4 signed activations, each 32-column block's sum starting at
// the activations' -128 * sum to take the + 128 back. Wide (int16): two vpexpandw and
// vpdpwssd against 2 activations each, no offset. Each block's sum is converted and
// scaled once, after its 8 quads. The only serial chain, the value pointer advancing by
// each mask's popcount, costs an add per tile.
template <bool Wide, int NT>
void bitmap_rows16_tile(const BitmapRows16& m, const QuantizedActs& a, int64_t t0, int64_t g0, int64_t g1, float* y,
                        int64_t ldy) {
  const __m512i zero_weight = _mm512_set1_epi8(char(0x80));
  const void* xs[NT];
  const float* bs[NT];
  const int32_t* bo[NT];
  for (int j = 0; j < NT; ++j) {
    xs[j] = Wide ? static_cast<const void*>(a.wide_row(t0 + j)) : static_cast<const void*>(a.signed_row(t0 + j));
    bs[j] = a.block_scales(t0 + j), bo[j] = a.block_offset(t0 + j);
  }
  // Token j's activations of columns [c, c + 4 / element bytes), as one broadcast.
  auto act = [&](int j, int64_t c) {
    int32_t x;
    std::memcpy(&x, static_cast<const char*>(xs[j]) + c * (Wide ? 2 : 1), 4);
    return _mm512_set1_epi32(x);
  };
  const int64_t blocks = m.quads / 8;
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* v = m.values.data() + (Wide ? 0 : m.group_start[size_t(g)]);
    const int16_t* v16 = m.values16.data() + (Wide ? m.group_start[size_t(g)] : 0);
    const uint64_t* masks = m.masks.data() + g * m.quads;
    __m512 f[NT];
    for (int j = 0; j < NT; ++j) f[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      __m512i s[NT];
      for (int j = 0; j < NT; ++j) s[j] = Wide ? _mm512_setzero_si512() : _mm512_set1_epi32(bo[j][b]);
      prefetch(masks + 8 * b + kPrefetch / 64);  // masks are 1/8 of the bytes at 50%
      for (int q = 0; q < 8; ++q) {
        const uint64_t mask = masks[8 * b + q];
        const int64_t c = 32 * b + 4 * q;
        if constexpr (Wide) {
          for (int h = 0; h < 2; ++h) {
            const __mmask32 mh = __mmask32(mask >> (32 * h));
            prefetch(v16 + kPrefetch / 2);
            const __m512i w = _mm512_maskz_expand_epi16(mh, _mm512_loadu_si512(v16));
            v16 += std::popcount(mh);
            for (int j = 0; j < NT; ++j) s[j] = _mm512_dpwssd_epi32(s[j], w, act(j, c + 2 * h));
          }
        } else {
          prefetch(v + kPrefetch);
          const __m512i w = _mm512_mask_expand_epi8(zero_weight, mask, _mm512_loadu_si512(v));
          v += std::popcount(mask);
          for (int j = 0; j < NT; ++j) s[j] = _mm512_dpbusd_epi32(s[j], w, act(j, c));
        }
      }
      for (int j = 0; j < NT; ++j) f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j]), _mm512_set1_ps(bs[j][b]), f[j]);
    }
    const __m512 rs = _mm512_loadu_ps(m.scales.data() + 16 * g);
    const __mmask16 keep = __mmask16(low_bits(m.rows - 16 * g));
    for (int j = 0; j < NT; ++j) _mm512_mask_storeu_ps(y + (t0 + j) * ldy + 16 * g, keep, _mm512_mul_ps(f[j], rs));
  }
}

// ---- Prefill: token-major GEMM ----
// Rows are brought to dense int8 (copied, or decoded from their layout: sparsity saves
// bytes, not multiplies, once 16 tokens share each weight), 4 at a time, and every
// vpdpbusd multiplies 4 weights broadcast against 4 columns of 16 tokens. Per 32-column
// block and 4 rows: 8 loads of activations, 32 vpdpbusd, 4 conversions and FMAs.

constexpr int kGemmRows = 4;

// Per-thread decode buffers: sized by the first prefill, reused after (decode never
// comes here, so the decode loop still does not allocate).
struct GemmScratch {
  std::vector<int8_t> w;     // [kGemmRows, stride], or one BitmapRows16 group [quads, 16, 4]
  std::vector<int32_t> sums; // [kGemmRows, stride / 32]: -128 * sum of each block's weights
};
thread_local GemmScratch tls_gemm;

// Where R decoded rows sit: row r's 4 weights of quad k at w + r * row_pitch + k *
// quad_pitch (row-major rows, or a 16-row group's tiles), its start value for block b at
// sums[r * sum_row_pitch + b * sum_block_pitch].
struct GemmRows {
  const int8_t* w;
  int64_t row_pitch, quad_pitch;
  const int32_t* sums;
  int64_t sum_row_pitch, sum_block_pitch;
};

template <int R>
void gemm_tile(const GemmRows& rows, const QuantizedActs& a, int64_t r0, const float* row_scales, float* y,
               int64_t ldy) {
  const int64_t quads = a.stride / 4, blocks_total = a.stride / kActBlock;
  const int64_t blocks = (a.cols + kActBlock - 1) / kActBlock;
  const __m512i token_rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                _mm512_set1_epi32(int32_t(ldy)));
  for (int64_t g = 0; g < a.groups; ++g) {
    const uint8_t* xt = a.qt.data() + g * quads * 64;
    const float* st = a.scales_t.data() + g * blocks_total * 16;
    __m512 f[R];
    for (int r = 0; r < R; ++r) f[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      __m512i ia[R];
      for (int r = 0; r < R; ++r) ia[r] = _mm512_set1_epi32(rows.sums[r * rows.sum_row_pitch + b * rows.sum_block_pitch]);
      for (int k = 0; k < kActBlock / 4; ++k) {
        const __m512i xv = _mm512_loadu_si512(xt + (b * (kActBlock / 4) + k) * 64);
        for (int r = 0; r < R; ++r) {
          int32_t w4;
          std::memcpy(&w4, rows.w + r * rows.row_pitch + (b * (kActBlock / 4) + k) * rows.quad_pitch, 4);
          ia[r] = _mm512_dpbusd_epi32(ia[r], xv, _mm512_set1_epi32(w4));
        }
      }
      const __m512 sv = _mm512_loadu_ps(st + b * 16);
      for (int r = 0; r < R; ++r) f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r]), sv, f[r]);
    }
    const __mmask16 valid = __mmask16(low_bits(std::min<int64_t>(16, a.n_tokens - 16 * g)));
    for (int r = 0; r < R; ++r)
      _mm512_mask_i32scatter_ps(y + 16 * g * ldy + r0 + r, valid, token_rows,
                                _mm512_mul_ps(f[r], _mm512_set1_ps(row_scales[r0 + r])), 4);
  }
}

// gemm_tile for n <= kGemmRows rows.
void gemm_some(int n, const GemmRows& rows, const QuantizedActs& a, int64_t r0, const float* row_scales, float* y,
               int64_t ldy) {
  switch (n) {
    case 4: return gemm_tile<4>(rows, a, r0, row_scales, y, ldy);
    case 3: return gemm_tile<3>(rows, a, r0, row_scales, y, ldy);
    case 2: return gemm_tile<2>(rows, a, r0, row_scales, y, ldy);
    default: return gemm_tile<1>(rows, a, r0, row_scales, y, ldy);
  }
}

// decode(r, dst) writes row r as dense int8 into dst[stride] (zeros past cols).
template <class Decode>
void gemm_rows(int64_t r0, int64_t r1, const float* row_scales, const QuantizedActs& a, float* y, int64_t ldy,
               Decode&& decode) {
  const int64_t stride = a.stride, blocks_total = stride / kActBlock;
  GemmScratch& sc = tls_gemm;
  if (sc.w.size() < size_t(kGemmRows * stride)) sc.w.resize(size_t(kGemmRows * stride));
  if (sc.sums.size() < size_t(kGemmRows * blocks_total)) sc.sums.resize(size_t(kGemmRows * blocks_total));
  for (int64_t r = r0; r < r1; r += kGemmRows) {
    const int n = int(std::min<int64_t>(kGemmRows, r1 - r));
    for (int i = 0; i < n; ++i) {
      int8_t* dst = sc.w.data() + i * stride;
      decode(r + i, dst);
      for (int64_t b = 0; b < blocks_total; ++b) {
        int32_t sum = 0;
        for (int c = 0; c < kActBlock; ++c) sum += dst[b * kActBlock + c];
        sc.sums[size_t(i * blocks_total + b)] = -128 * sum;
      }
    }
    gemm_some(n, GemmRows{sc.w.data(), stride, 4, sc.sums.data(), blocks_total, 1}, a, r, row_scales, y, ldy);
  }
}

void dense_gemm(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  gemm_rows(r0, r1, m.scales, a, y, ldy, [&](int64_t r, int8_t* dst) {
    std::memcpy(dst, m.w + r * m.cols, size_t(m.cols));
    std::memset(dst + m.cols, 0, size_t(a.stride - m.cols));
  });
}

// Masks of the kept columns of N:M groups from their packed positions, by table: for 2:4
// one position byte (two groups) gives 8 mask bits, for 4:8 12 bits (one group) give 8.
// Positions are distinct in a group (validate()), so a 64-column window takes exactly 32
// values, and an expand puts them right when each group lists its positions in column
// order. Bit 8 flags a group that does not: one keeping fewer than N, whose zero fillers
// come after its kept values (docs/FORMAT.md); such windows are decoded one by one.
struct NMMaskTables {
  uint16_t t24[256];
  uint16_t t48[4096];
  static uint16_t entry(const int* p, int groups, int n) {
    int m = 0;
    bool unordered = false;
    for (int g = 0; g < groups; ++g)
      for (int i = 0; i < n; ++i) {
        m |= 1 << (p[g * n + i] + g * 4);
        if (i > 0 && p[g * n + i] < p[g * n + i - 1]) unordered = true;
      }
    return uint16_t(m | (unordered ? 0x100 : 0));
  }
  NMMaskTables() {
    int p[4];
    for (int b = 0; b < 256; ++b) {
      for (int i = 0; i < 4; ++i) p[i] = (b >> (2 * i)) & 3;
      t24[b] = entry(p, 2, 2);
    }
    for (int x = 0; x < 4096; ++x) {
      for (int i = 0; i < 4; ++i) p[i] = (x >> (3 * i)) & 7;
      t48[x] = entry(p, 1, 4);
    }
  }
};
const NMMaskTables kNMMasks;

void nm_gemm(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y,
             int64_t ldy) {
  const int n = m.nm.n, mm = m.nm.m, bits = format::nm_bits(mm);
  const int64_t per_row = format::nm_values_per_row(m.cols, n, mm);
  const int64_t pos_bytes = format::nm_position_bytes_per_row(m.cols, n, mm);
  const bool table = (n == 2 && mm == 4) || (n == 4 && mm == 8);
  const int64_t windows = m.cols / 64, tail_cols = m.cols - 64 * windows;
  gemm_rows(r0, r1, m.scales.data(), a, y, ldy, [&](int64_t r, int8_t* dst) {
    const int8_t* v = m.nm.values.data() + r * per_row;
    const uint8_t* pos = m.nm.positions.data() + r * pos_bytes;
    std::memset(dst, 0, size_t(a.stride));
    // Values [k, k1) as groups from g on, positions read as a little-endian bit stream
    // (a byte in whenever fewer than `bits` are buffered). k starts on a byte boundary
    // of the positions: at a row or window start.
    auto one_by_one = [&](int64_t k, int64_t k1, int64_t g) {
      const uint8_t* p = pos + (k * bits) / 8;
      uint32_t buf = 0;
      int have = 0;
      const uint32_t field = (1u << bits) - 1;
      for (; k < k1; ++g)
        for (int i = 0; i < n; ++i, ++k) {
          if (have < bits) buf |= uint32_t(*p++) << have, have += 8;
          dst[g * mm + (buf & field)] = v[k];
          buf >>= bits;
          have -= bits;
        }
    };
    if (!table) return one_by_one(0, per_row, 0);
    // Whole 64-column windows (32 values, 64 / M groups): a mask from the table, then
    // one expand.
    for (int64_t w = 0; w < windows; ++w) {
      const int64_t k = 32 * w, g = w * (64 / mm);
      uint64_t mask = 0;
      unsigned unordered = 0;
      for (int i = 0; i < 8; ++i) {
        uint16_t e;
        if (mm == 4) {
          e = kNMMasks.t24[pos[w * 8 + i]];
        } else {
          const int64_t bit = (g + i) * 12;
          uint16_t x;
          std::memcpy(&x, pos + bit / 8, 2);
          e = kNMMasks.t48[(x >> (bit % 8)) & 0xfff];
        }
        mask |= uint64_t(e & 0xff) << (8 * i);
        unordered |= e;
      }
      if (unordered & 0x100) one_by_one(k, k + 32, g);
      else _mm512_storeu_si512(dst + 64 * w, _mm512_maskz_expand_epi8(mask, _mm512_maskz_loadu_epi8(0xffffffffull, v + k)));
    }
    if (tail_cols) one_by_one(32 * windows, per_row, windows * (64 / mm));
  });
}

// A 16-row group decoded as it is stored, [quads, 16 rows, 4 columns], with each row's
// block start values [blocks, 16] from one vpdpbusd per tile; then 4 rows at a time.
void bitmap_rows16_gemm(const BitmapRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y,
                        int64_t ldy) {
  const __m512i zero_weight = _mm512_set1_epi8(char(0x80));
  const int64_t blocks = m.quads / 8;
  GemmScratch& sc = tls_gemm;
  if (sc.w.size() < size_t(m.quads * 64)) sc.w.resize(size_t(m.quads * 64));
  if (sc.sums.size() < size_t(blocks * 16)) sc.sums.resize(size_t(blocks * 16));
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* v = m.values.data() + m.group_start[size_t(g)];
    const uint64_t* masks = m.masks.data() + g * m.quads;
    for (int64_t b = 0; b < blocks; ++b) {
      __m512i sum = _mm512_setzero_si512();
      for (int64_t q = 8 * b; q < 8 * b + 8; ++q) {
        const __m512i w = _mm512_xor_si512(_mm512_mask_expand_epi8(zero_weight, masks[q], _mm512_loadu_si512(v)),
                                           zero_weight);  // + 128 off again
        v += std::popcount(masks[q]);
        _mm512_storeu_si512(sc.w.data() + 64 * q, w);
        sum = _mm512_dpbusd_epi32(sum, zero_weight, w);
      }
      _mm512_storeu_si512(sc.sums.data() + 16 * b, _mm512_sub_epi32(_mm512_setzero_si512(), sum));
    }
    for (int i = 0; i < 16 && 16 * g + i < m.rows; i += kGemmRows)
      gemm_some(int(std::min<int64_t>(kGemmRows, m.rows - 16 * g - i)),
                GemmRows{sc.w.data() + 4 * i, 4, 64, sc.sums.data() + i, 1, 16}, a, 16 * g + i, m.scales.data(), y,
                ldy);
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
struct NmRows16Tile {
  static void run(int64_t t0, const NmRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y,
                  int64_t ldy) {
    nm_rows16_tile<NT>(m, a, t0, g0, g1, y, ldy);
  }
};
template <bool Wide>
struct BitmapRows16Tiles {
  template <int NT>
  struct Tile {
    static void run(int64_t t0, const BitmapRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y,
                    int64_t ldy) {
      bitmap_rows16_tile<Wide, NT>(m, a, t0, g0, g1, y, ldy);
    }
  };
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
  if (a.groups > 0) return dense_gemm(m, a, r0, r1, y, ldy);
  over_tokens<DenseTile>(a.n_tokens, m, a, r0, r1, y, ldy);
}

void nm(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  if (a.groups > 0) return nm_gemm(m, a, r0, r1, y, ldy);
  if (m.nm.n == 2 && m.nm.m == 4) return over_tokens<NMTiles<2, 4>::Tile>(a.n_tokens, m, a, r0, r1, y, ldy);
  if (m.nm.n == 4 && m.nm.m == 8) return over_tokens<NMTiles<4, 8>::Tile>(a.n_tokens, m, a, r0, r1, y, ldy);
  kInt8Avx2.nm(m, a, r0, r1, y, ldy);  // other N:M: windows expanded one by one
}

void nm_rows16(const NmRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y, int64_t ldy) {
  over_tokens<NmRows16Tile>(a.n_tokens, m, a, g0, g1, y, ldy);
}

void bitmap_rows16(const BitmapRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y, int64_t ldy) {
  // Wide values have no GEMM (they are not int8): prefill runs the decode tiles.
  if (m.wide) return over_tokens<BitmapRows16Tiles<true>::Tile>(a.n_tokens, m, a, g0, g1, y, ldy);
  if (a.groups > 0) return bitmap_rows16_gemm(m, a, g0, g1, y, ldy);
  over_tokens<BitmapRows16Tiles<false>::Tile>(a.n_tokens, m, a, g0, g1, y, ldy);
}

// Row-major bitmap forms are what targets without bitmap_rows16 run; Int8Linear never
// builds them for this one, but the table stays complete.
void bitmap(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  kInt8Avx2.bitmap(m, a, r0, r1, y, ldy);
}

void bitmap_f16(const BitmapMatrix& m, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  bitmap_f16_scalar(m, x, n_tokens, r0, r1, y, ldy);
}

}  // namespace

const Int8Kernels kInt8Avx512 = {"avx512-vnni", dense, nm, bitmap, bitmap_f16, nm_rows16, bitmap_rows16};

}  // namespace upg::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
