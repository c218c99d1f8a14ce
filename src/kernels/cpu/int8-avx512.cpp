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

#include "kernels/cpu/block-quant.h"
#include "kernels/cpu/int8-gemm-avx512.h"
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
// Two blocks: lanes 0-7 and 8-15.
inline __m512 two_block_scales(const float* s) {
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(s)))));
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
// prefetcher alone left the kernels short of bandwidth, the bitmap kernel by far: an
// expand waiting on a load that missed the caches holds up the core (docs/KERNELS.md,
// "Prefetch"). A prefetch past the end of an array cannot fault.
constexpr int64_t kPrefetch = 8192;
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

inline uint64_t low_bits(int64_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

// Accumulators per token: two chains, even vectors in one and odd in the other, so a
// lone token's consecutive vectors do not wait on one FMA. The same two in every tile
// size (a tile of four tokens would have ILP enough with one): a token's sum is then the
// same whatever tile it runs in, so its result does not depend on how many tokens the
// call has (batch invariance).
constexpr int kAcc = 2;

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
  constexpr int A = kAcc;
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

// A 16-row group's sums for tokens [t0, t0 + NT) times its row scales, in one masked
// store per token (rows past `rows` are left alone).
template <int NT>
inline void store_group16(const __m512 (&f)[NT], const float* scales, int64_t rows, int64_t g, int64_t t0, float* y,
                          int64_t ldy) {
  const __m512 rs = _mm512_loadu_ps(scales + 16 * g);
  const __mmask16 keep = __mmask16(low_bits(rows - 16 * g));
  for (int j = 0; j < NT; ++j) _mm512_mask_storeu_ps(y + (t0 + j) * ldy + 16 * g, keep, _mm512_mul_ps(f[j], rs));
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
  const int8_t* xs[NT];
  const float* bs[NT];
  const int32_t* bo[NT];
  for (int j = 0; j < NT; ++j) xs[j] = a.signed_row(t0 + j), bs[j] = a.block_scales(t0 + j), bo[j] = a.block_offset(t0 + j);
  // Token j's activations of columns [c, c + 4) (int8), or [c, c + 2) widened to int16
  // pairs, as one broadcast.
  auto act = [&](int j, int64_t c) {
    int32_t x;
    if constexpr (Wide) x = int32_t(uint16_t(xs[j][c])) | int32_t(uint32_t(uint16_t(xs[j][c + 1])) << 16);
    else std::memcpy(&x, xs[j] + c, 4);
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
    store_group16(f, m.scales.data(), m.rows, g, t0, y, ldy);
  }
}

// The constants of the 2:4 gather and expand (Nm24Rows16). Both start from a record's
// 48 code bytes spread once so that qword j holds the codes of rows 2j and 2j + 1 (its
// bytes 6j..6j + 5: the reach of vpmultishiftqb is one qword), then per octet pick one
// 3-bit code per byte with vpmultishiftqb, or in the byte's role (vpternlogd) and look
// the pair up in a 64-byte vpermb table.
struct Nm24Consts16 {
  __m512i spread, code_bits;
  // Gather: byte 4i + 2h + k <- row i's code of octet v's group h; role (2h + k) << 3;
  // the table gives the column of the group's k-th value among the octet's 8, 4h + p_k.
  __m512i gather_shift[4], gather_role, gather_table;
  // Expand (prefill): byte 4i + c of quad h's dense tile <- row i's code of group h of
  // octet 0 (+ 12 bits per octet); role c << 3; the table gives k when the pair keeps
  // column c, else 64 (vpermi2b: zero), to which the base adds the byte of row i's group
  // h, 4i + 2h.
  __m512i expand_shift[2], expand_role, expand_table, expand_base[2];
  Nm24Consts16() {
    alignas(64) uint8_t spr[64], gs[4][64], gr[64], gt[64] = {}, es[2][64], er[64], et[64], eb[2][64];
    for (int b = 0; b < 64; ++b) {
      const int i = b / 4, low = 6 * (i % 2);  // bit of row i's codes of octet 0 in its qword
      spr[b] = uint8_t(6 * (b / 8) + b % 8);
      const int h = b % 4 / 2, k = b % 2, col = b % 4;
      for (int v = 0; v < 4; ++v) gs[v][b] = uint8_t(12 * v + low + 3 * h);
      gr[b] = uint8_t((2 * h + k) << 3);
      er[b] = uint8_t(col << 3);
      for (int hh = 0; hh < 2; ++hh) {
        es[hh][b] = uint8_t(low + 3 * hh);
        eb[hh][b] = uint8_t(4 * i + 2 * hh);
      }
    }
    std::fill(et, et + 64, uint8_t(64));
    for (int p0 = 0; p0 < 4; ++p0)
      for (int p1 = p0 + 1; p1 < 4; ++p1) {
        const int code = nm24_pair_code(p0, p1);
        for (int h = 0; h < 2; ++h) {
          gt[(2 * h) << 3 | code] = uint8_t(4 * h + p0);
          gt[(2 * h + 1) << 3 | code] = uint8_t(4 * h + p1);
        }
        et[p0 << 3 | code] = 0;
        et[p1 << 3 | code] = 1;
      }
    spread = _mm512_load_si512(spr);
    code_bits = _mm512_set1_epi8(7);
    for (int v = 0; v < 4; ++v) gather_shift[v] = _mm512_load_si512(gs[v]);
    gather_role = _mm512_load_si512(gr);
    gather_table = _mm512_load_si512(gt);
    expand_role = _mm512_load_si512(er);
    expand_table = _mm512_load_si512(et);
    for (int h = 0; h < 2; ++h) {
      expand_shift[h] = _mm512_load_si512(es[h]);
      expand_base[h] = _mm512_load_si512(eb[h]);
    }
  }
};
const Nm24Consts16& nm24_consts16() {
  static const Nm24Consts16 c;
  return c;
}

// A record's codes with qword j holding rows 2j and 2j + 1. The load reads 16 bytes of
// the values after them, which the spread leaves out.
inline __m512i nm24_spread(const uint8_t* rec, const Nm24Consts16& c) {
  return _mm512_permutexvar_epi8(c.spread, _mm512_loadu_si512(rec));
}

// (code & 7) | role in one vpternlogd (0xEA = a & b | c), then the table.
inline __m512i nm24_lookup(__m512i shift, __m512i spread, __m512i role, __m512i table, const Nm24Consts16& c) {
  return _mm512_permutexvar_epi8(
      _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(shift, spread), c.code_bits, role, 0xEA), table);
}

// How far ahead the 2:4 decode kernel prefetches its one stream: nearer than the other
// kernels' 8 KB, which was slower for it (docs/KERNELS.md, the 2:4 section).
constexpr int64_t kNm24Ahead = 4096;

// 2:4 in Nm24Rows16: per 8 columns of 16 rows, 3 instructions (and a quarter of the
// spread) turn the codes into a vpshufb control, which gathers each value's activation
// (+ 128) from an 8-byte broadcast; vpdpbusd sums. The + 128 is taken back once per
// 32-column block from a second vpdpbusd per vector, 128 * sum(w), shared by the tile's
// tokens; then the float conversion and the block scale.
template <int NT>
void nm24_rows16_tile(const Nm24Rows16& m, const QuantizedActs& a, int64_t t0, int64_t g0, int64_t g1, float* y,
                      int64_t ldy) {
  const Nm24Consts16& c = nm24_consts16();
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  const uint8_t* xq[NT];
  const float* bs[NT];
  for (int j = 0; j < NT; ++j) xq[j] = a.row(t0 + j), bs[j] = a.block_scales(t0 + j);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* rec = m.record(g, 0);
    __m512 f[NT];
    for (int j = 0; j < NT; ++j) f[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < m.blocks; ++b, rec += kNm24RecordBytes) {
      for (int64_t l = 0; l < kNm24RecordBytes; l += 64) prefetch(rec + kNm24Ahead + l);
      __m512i off = _mm512_setzero_si512(), s[NT];
      for (int j = 0; j < NT; ++j) s[j] = _mm512_setzero_si512();
      const __m512i spread = nm24_spread(rec, c);
      for (int v = 0; v < 4; ++v) {
        const __m512i ctl = nm24_lookup(c.gather_shift[v], spread, c.gather_role, c.gather_table, c);
        const __m512i w = _mm512_loadu_si512(rec + kNm24CodeBlockBytes + 64 * v);
        off = _mm512_dpbusd_epi32(off, bias, w);
        for (int j = 0; j < NT; ++j) {
          int64_t x8;
          std::memcpy(&x8, xq[j] + 32 * b + 8 * v, 8);
          s[j] = _mm512_dpbusd_epi32(s[j], _mm512_shuffle_epi8(_mm512_set1_epi64(x8), ctl), w);
        }
      }
      for (int j = 0; j < NT; ++j)
        f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s[j], off)), _mm512_set1_ps(bs[j][b]), f[j]);
    }
    store_group16(f, m.scales.data(), m.rows, g, t0, y, ldy);
  }
}

// ---- Prefill: token-major GEMM (int8-gemm-avx512.h) ----
// Rows are brought to dense int8 (copied, or decoded from their layout: sparsity saves
// bytes, not multiplies, once 16 tokens share each weight), 4 at a time.

// Per-thread decode buffers: sized by the first prefill, reused after (decode never
// comes here, so the decode loop still does not allocate).
struct GemmScratch {
  std::vector<int8_t> w;     // [kGemmRows, stride], or one BitmapRows16 group [quads, 16, 4]
  std::vector<int32_t> sums; // [kGemmRows, stride / 32]: -128 * sum of each block's weights
};
thread_local GemmScratch tls_gemm;

// Per sub-block of Sub columns and 4 rows: Sub / 4 loads of activations, Sub vpdpbusd,
// 4 conversions and multiply-adds by the activations' scales (times the weights' own
// per sub-block with Scaled); with Min one more multiply-add per row and sub-block.
template <int R, int Sub, bool Scaled, bool Min>
void gemm_tile(const GemmRows& rows, const QuantizedActs& a, int64_t r0, const float* row_scales, float* y,
               int64_t ldy) {
  constexpr int kQuads = Sub / 4;
  const int64_t quads = a.stride / 4, blocks_total = a.stride / kActBlock;
  const int64_t subs = (a.cols + Sub - 1) / Sub;
  const __m512i token_rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                _mm512_set1_epi32(int32_t(ldy)));
  for (int64_t g = 0; g < a.groups; ++g) {
    const uint8_t* xt = a.qt.data() + g * quads * 64;
    const float* st = a.scales_t.data() + g * blocks_total * 16;
    __m512 f[R];
    for (int r = 0; r < R; ++r) f[r] = _mm512_setzero_ps();
    for (int64_t s = 0; s < subs; ++s) {
      __m512i ia[R];
      for (int r = 0; r < R; ++r)
        ia[r] = _mm512_set1_epi32(rows.starts[r * rows.start_row_pitch + s * rows.start_sub_pitch]);
      for (int k = 0; k < kQuads; ++k) {
        const int64_t q = s * kQuads + k;
        const __m512i xv = _mm512_loadu_si512(xt + q * 64);
        for (int r = 0; r < R; ++r) {
          int32_t w4;
          std::memcpy(&w4, rows.w + r * rows.row_pitch + q * rows.quad_pitch, 4);
          ia[r] = _mm512_dpbusd_epi32(ia[r], xv, _mm512_set1_epi32(w4));
        }
      }
      const __m512 sv = _mm512_loadu_ps(st + s * Sub / kActBlock * 16);
      for (int r = 0; r < R; ++r) {
        const __m512 scale = Scaled ? _mm512_mul_ps(sv, _mm512_set1_ps(rows.scales[r * rows.subs + s])) : sv;
        f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r]), scale, f[r]);
      }
    }
    if constexpr (Min)
      for (int64_t s = 0; s < subs; ++s) {
        const __m512 as = _mm512_loadu_ps(rows.act_sums + (g * rows.subs + s) * 16);
        for (int r = 0; r < R; ++r) f[r] = _mm512_fmadd_ps(_mm512_set1_ps(rows.mins[r * rows.subs + s]), as, f[r]);
      }
    const __mmask16 valid = __mmask16(low_bits(std::min<int64_t>(16, a.n_tokens - 16 * g)));
    for (int r = 0; r < R; ++r)
      _mm512_mask_i32scatter_ps(y + 16 * g * ldy + r0 + r, valid, token_rows,
                                row_scales ? _mm512_mul_ps(f[r], _mm512_set1_ps(row_scales[r0 + r])) : f[r], 4);
  }
}

template <int Sub, bool Scaled, bool Min>
void gemm_some(int n, const GemmRows& rows, const QuantizedActs& a, int64_t r0, const float* row_scales, float* y,
               int64_t ldy) {
  switch (n) {
    case 4: return gemm_tile<4, Sub, Scaled, Min>(rows, a, r0, row_scales, y, ldy);
    case 3: return gemm_tile<3, Sub, Scaled, Min>(rows, a, r0, row_scales, y, ldy);
    case 2: return gemm_tile<2, Sub, Scaled, Min>(rows, a, r0, row_scales, y, ldy);
    default: return gemm_tile<1, Sub, Scaled, Min>(rows, a, r0, row_scales, y, ldy);
  }
}

}  // namespace

void gemm_rows_avx512(int n, const GemmRows& rows, const QuantizedActs& a, int64_t r0, const float* row_scales,
                      float* y, int64_t ldy) {
  if (!rows.scales) return gemm_some<32, false, false>(n, rows, a, r0, row_scales, y, ldy);
  if (rows.sub == 16)
    return rows.mins ? gemm_some<16, true, true>(n, rows, a, r0, row_scales, y, ldy)
                     : gemm_some<16, true, false>(n, rows, a, r0, row_scales, y, ldy);
  return rows.mins ? gemm_some<32, true, true>(n, rows, a, r0, row_scales, y, ldy)
                   : gemm_some<32, true, false>(n, rows, a, r0, row_scales, y, ldy);
}

namespace {

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
    gemm_rows_avx512(n, GemmRows{sc.w.data(), stride, 4, sc.sums.data(), blocks_total, 1}, a, r, row_scales, y, ldy);
  }
}

void dense_gemm(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  gemm_rows(r0, r1, m.scales, a, y, ldy, [&](int64_t r, int8_t* dst) {
    std::memcpy(dst, m.w + r * m.cols, size_t(m.cols));
    std::memset(dst + m.cols, 0, size_t(a.stride - m.cols));
  });
}

// The thread's scratch for one 16-row group of `blocks` 32-column blocks decoded to
// dense int8 tiles [blocks * 8 quads, 16 rows, 4 columns] and its rows' block start values
// [blocks, 16].
GemmScratch& group16_scratch(int64_t blocks) {
  GemmScratch& sc = tls_gemm;
  if (sc.w.size() < size_t(blocks * 8 * 64)) sc.w.resize(size_t(blocks * 8 * 64));
  if (sc.sums.size() < size_t(blocks * 16)) sc.sums.resize(size_t(blocks * 16));
  return sc;
}

// The GEMM over group g's rows, decoded into group16_scratch, 4 rows at a time.
void gemm_group16(int64_t rows, int64_t g, const float* scales, const QuantizedActs& a, float* y, int64_t ldy) {
  const GemmScratch& sc = tls_gemm;
  for (int64_t i = 0; i < 16 && 16 * g + i < rows; i += kGemmRows)
    gemm_rows_avx512(int(std::min<int64_t>(kGemmRows, rows - 16 * g - i)),
                     GemmRows{sc.w.data() + 4 * i, 4, 64, sc.sums.data() + i, 1, 16}, a, 16 * g + i, scales, y, ldy);
}

// A 16-row group decoded as it is stored, [quads, 16 rows, 4 columns], with each row's
// block start values [blocks, 16] from one vpdpbusd per tile; then 4 rows at a time.
void bitmap_rows16_gemm(const BitmapRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y,
                        int64_t ldy) {
  const __m512i zero_weight = _mm512_set1_epi8(char(0x80));
  const int64_t blocks = m.quads / 8;
  GemmScratch& sc = group16_scratch(blocks);
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
    gemm_group16(m.rows, g, m.scales.data(), a, y, ldy);
  }
}

// A 2:4 group decoded into the thread's scratch as bitmap_rows16_gemm does (vpermi2b puts
// each row's two values of a quad on their columns, zeros elsewhere), then the GEMM.
void nm24_rows16_gemm(const Nm24Rows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y, int64_t ldy) {
  const Nm24Consts16& c = nm24_consts16();
  const __m512i bias = _mm512_set1_epi8(char(0x80)), zero = _mm512_setzero_si512();
  GemmScratch& sc = group16_scratch(m.blocks);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* rec = m.record(g, 0);
    for (int64_t b = 0; b < m.blocks; ++b, rec += kNm24RecordBytes) {
      __m512i sum = _mm512_setzero_si512();
      const __m512i spread = nm24_spread(rec, c);
      for (int v = 0; v < 4; ++v) {
        const __m512i w = _mm512_loadu_si512(rec + kNm24CodeBlockBytes + 64 * v);
        for (int h = 0; h < 2; ++h) {
          const __m512i shift = _mm512_add_epi8(c.expand_shift[h], _mm512_set1_epi8(char(12 * v)));
          const __m512i idx =
              _mm512_add_epi8(nm24_lookup(shift, spread, c.expand_role, c.expand_table, c), c.expand_base[h]);
          const __m512i d = _mm512_permutex2var_epi8(w, idx, zero);
          _mm512_storeu_si512(sc.w.data() + 64 * (8 * b + 2 * v + h), d);
          sum = _mm512_dpbusd_epi32(sum, bias, d);
        }
      }
      _mm512_storeu_si512(sc.sums.data() + 16 * b, _mm512_sub_epi32(_mm512_setzero_si512(), sum));
    }
    gemm_group16(m.rows, g, m.scales.data(), a, y, ldy);
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

void dense(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  if (a.groups > 0) return dense_gemm(m, a, r0, r1, y, ldy);
  over_tokens<DenseTile>(a.n_tokens, m, a, r0, r1, y, ldy);
}

template <int NT>
struct Nm24Rows16Tile {
  static void run(int64_t t0, const Nm24Rows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y,
                  int64_t ldy) {
    nm24_rows16_tile<NT>(m, a, t0, g0, g1, y, ldy);
  }
};

void nm24_rows16(const Nm24Rows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y, int64_t ldy) {
  if (a.groups > 0) return nm24_rows16_gemm(m, a, g0, g1, y, ldy);
  over_tokens<Nm24Rows16Tile>(a.n_tokens, m, a, g0, g1, y, ldy);
}

void bitmap_rows16(const BitmapRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y, int64_t ldy) {
  // Wide values have no GEMM (they are not int8): prefill runs the decode tiles.
  if (m.wide) return over_tokens<BitmapRows16Tiles<true>::Tile>(a.n_tokens, m, a, g0, g1, y, ldy);
  if (a.groups > 0) return bitmap_rows16_gemm(m, a, g0, g1, y, ldy);
  over_tokens<BitmapRows16Tiles<false>::Tile>(a.n_tokens, m, a, g0, g1, y, ldy);
}

// Row-major bitmap forms and N:M in the file's layout are what targets without
// bitmap_rows16 run; Int8Linear never hands them to this one, but the table stays
// complete.
void nm(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  kInt8Avx2.nm(m, a, r0, r1, y, ldy);
}

void bitmap(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  kInt8Avx2.bitmap(m, a, r0, r1, y, ldy);
}

void bitmap_f16(const BitmapMatrix& m, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  bitmap_f16_scalar(m, x, n_tokens, r0, r1, y, ldy);
}

}  // namespace

const Int8Kernels kInt8Avx512 = {"avx512-vnni", dense,   nm,      bitmap,     bitmap_f16,        bitmap_rows16,
                                 nullptr,       nullptr, nm24_rows16, block_quant_avx512, nm24_int4_avx512, nullptr};

}  // namespace upg::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
