// The int8 kernels for AVX2 (Haswell, Zen 1-3). AVX2 has no int8 dot product with an
// int32 sum, so a 64-column window is multiplied with vpmaddubsw (u8 x s8 pairs to s16)
// and vpmaddwd (s16 pairs to s32). vpmaddubsw saturates past 32767, so the unsigned
// operand is |w| (at most 128) and the activation takes w's sign: 2 * 128 * 127 fits.
// AVX2 has no byte expand or cross-lane byte permute: 2:4 gathers its activations by
// in-lane shuffles, and other layouts run as dense rows (docs/KERNELS.md, "AVX2").
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/block-quant.h"
#include "kernels/cpu/int8-kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,popcnt,bmi,bmi2")

namespace upg::kernels {
namespace {

static_assert(kActBlock == 32, "one 32-byte half per activation block");

// Software prefetch distance of each row's weight stream, in bytes, as in the AVX-512
// kernels: the 2:4 kernel needs it to stream as fast as dense int8, which it leaves
// unchanged (docs/KERNELS.md, "AVX2"). A prefetch past the end of an array never faults.
constexpr int64_t kAhead = 8192;

// The sum of v's lanes, added in the order of store()'s reduction of 4 rows at once, so
// that a row's result does not depend on whether it ran alone or in a group of 4.
inline float hsum(__m256 v) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v, v), v);
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

// The R x T accumulators of one call, passed and returned by value: as an array passed
// by reference GCC kept them in memory, zeroed them with `rep stos` on every call and
// stored all of them to the stack on every block (KERNELS.md, "Accumulators by value").
template <int R, int T>
struct Acc {
  __m256 v[R][T];
  static Acc zero() {
    Acc a;
    for (int i = 0; i < R; ++i)
      for (int t = 0; t < T; ++t) a.v[i][t] = _mm256_setzero_ps();
    return a;
  }
};

// Returns `in` plus, in v[i][t], row i's and token t's sum over blocks [0, nb): row i's
// block b sits at src + row_step i + pitch b, token t's at x[t] + 32 b with scale s[t][b].
// R rows share every activation load, and each (row, token) pair has its own
// accumulator: with one accumulator per row the FMA latency chain, not memory, set the
// pace. The rows and tokens come as base pointers and steps, not recomputed per
// block: with 8 accumulators live, the per-block address arithmetic spilled to the stack,
// and its loads and multiplies were among the hottest instructions of a prompt.
template <int R, int T, bool Prefetch>
inline Acc<R, T> accumulate(const int8_t* src, int64_t row_step, int64_t pitch, int64_t nb, const int8_t* const (&x)[T],
                            const float* const (&s)[T], Acc<R, T> in) {
  const __m256i ones = _mm256_set1_epi16(1);
  auto& acc = in.v;
  for (int64_t b = 0; b < nb; ++b) {
    __m256i xv[T];
    __m256 sv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      xv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t] + 32 * b));
      sv[t] = _mm256_broadcast_ss(s[t] + b);
    }
    const int8_t* w = src + pitch * b;
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      if (Prefetch && (pitch > 32 || b % 2 == 0))
        _mm_prefetch(reinterpret_cast<const char*>(w + row_step * i + kAhead), _MM_HINT_T0);
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + row_step * i));
      const __m256i aw = _mm256_abs_epi8(wv);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[t], wv)), ones);
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sv[t], acc[i][t]);
      }
    }
  }
  return in;
}

// y[t0 + t, r + i] = the sum in acc[i][t] times row r + i's scale (scales[i]).
template <int R, int T>
inline void store(const Acc<R, T>& acc, const float* scales, int64_t r, int64_t t0, float* y, int64_t ldy) {
  if constexpr (R == 4) {
    // A token's 4 rows are 4 adjacent outputs: three horizontal adds and one add of the
    // halves reduce the 4 accumulators to them, for one multiply and one store.
    const __m128 sc = _mm_loadu_ps(scales);
    for (int t = 0; t < T; ++t) {
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc.v[0][t], acc.v[1][t]), _mm256_hadd_ps(acc.v[2][t], acc.v[3][t]));
      const __m128 sum = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
      _mm_storeu_ps(y + (t0 + t) * ldy + r, _mm_mul_ps(sum, sc));
    }
  } else {
    for (int i = 0; i < R; ++i)
      for (int t = 0; t < T; ++t) y[(t0 + t) * ldy + r + i] = hsum(acc.v[i][t]) * scales[i];
  }
}

// Tokens [t0, t0 + T)'s activations and block scales, offset by `block` blocks.
template <int T>
struct TokenRows {
  const int8_t* x[T];
  const float* s[T];
  TokenRows(const QuantizedActs& a, int64_t t0, int64_t block = 0) {
    for (int t = 0; t < T; ++t) {
      x[t] = a.signed_row(t0 + t) + 32 * block;
      s[t] = a.block_scales(t0 + t) + block;
    }
  }
};

// Rows [r, r + R) of a dense int8 matrix against tokens [t0, t0 + T). A last partial
// block is copied into zero-padded buffers, so no load runs past a row's end.
template <int R, int T, bool Prefetch>
void rows_tokens(const DenseI8& m, int64_t r, const QuantizedActs& a, int64_t t0, float* y, int64_t ldy) {
  const int64_t full = m.cols / 32, rest = m.cols - 32 * full;
  const TokenRows<T> tok(a, t0);
  Acc<R, T> acc = accumulate<R, T, Prefetch>(m.w + r * m.cols, m.cols, 32, full, tok.x, tok.s, Acc<R, T>::zero());
  if (rest) {
    alignas(32) int8_t tail[R][32] = {};
    for (int i = 0; i < R; ++i) std::memcpy(tail[i], m.w + (r + i) * m.cols + 32 * full, size_t(rest));
    const TokenRows<T> last(a, t0, full);
    acc = accumulate<R, T, false>(tail[0], 32, 32, 1, last.x, last.s, acc);
  }
  store(acc, m.scales + r, r, t0, y, ldy);
}

// Rows in 32-column blocks, every block whole: row i's block b at src + row_step i +
// pitch b. A DenseRows4 group, or a 2:4 group expanded into a tile (nm24_expanded).
struct Panel {
  const int8_t* src;
  int64_t row_step, pitch, blocks;
  const float* scales;  // of the panel's first row
};

// Rows [r, r + R) of a panel starting at row r against tokens [t0, t0 + T).
template <int R, int T, bool Prefetch>
void rows_tokens(const Panel& p, int64_t r, const QuantizedActs& a, int64_t t0, float* y, int64_t ldy) {
  const TokenRows<T> tok(a, t0);
  store(accumulate<R, T, Prefetch>(p.src, p.row_step, p.pitch, p.blocks, tok.x, tok.s, Acc<R, T>::zero()), p.scales, r, t0, y, ldy);
}

// Rows [r, r + R) of a DenseRows4 matrix (a group's rows 32 bytes apart in each block).
template <int R, int T, bool Prefetch>
void rows_tokens(const DenseRows4& m, int64_t r, const QuantizedActs& a, int64_t t0, float* y, int64_t ldy) {
  rows_tokens<R, T, Prefetch>(Panel{m.block(r, 0), 32, 128, m.blocks, m.scales.data() + r}, r, a, t0, y, ldy);
}

// R rows of either dense form against every token, two per pass so that they share each
// weight load; the rows stay in L1 while the tokens go by, so only the first pass
// prefetches them, and only when they come from memory (Prefetch; not a tile that was
// just written). 4 rows x 2 tokens of accumulators plus the operands fill the 16
// registers.
template <int R, bool Prefetch = true, class Matrix>
void rows_all_tokens(const Matrix& m, int64_t r, const QuantizedActs& a, float* y, int64_t ldy) {
  if (a.n_tokens < 2) return a.n_tokens == 1 ? rows_tokens<R, 1, Prefetch>(m, r, a, 0, y, ldy) : void();
  rows_tokens<R, 2, Prefetch>(m, r, a, 0, y, ldy);
  int64_t t0 = 2;
  for (; t0 + 2 <= a.n_tokens; t0 += 2) rows_tokens<R, 2, false>(m, r, a, t0, y, ldy);
  if (t0 < a.n_tokens) rows_tokens<R, 1, false>(m, r, a, t0, y, ldy);
}

void dense(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) rows_all_tokens<4>(m, r, a, y, ldy);
  for (; r < r1; ++r) rows_all_tokens<1>(m, r, a, y, ldy);
}

// Calls group(r) for each whole group of 4 interleaved rows in [r0, r1) and single(r) for
// the other rows: a thread's range may start or end inside a group.
template <class Group, class Single>
inline void by_groups_of_4(int64_t r0, int64_t r1, Group&& group, Single&& single) {
  int64_t r = r0;
  for (; r < r1 && (r % 4 || r + 4 > r1); ++r) single(r);
  for (; r + 4 <= r1; r += 4) group(r);
  for (; r < r1; ++r) single(r);
}

void dense_rows4(const DenseRows4& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  by_groups_of_4(
      r0, r1, [&](int64_t r) { rows_all_tokens<4>(m, r, a, y, ldy); },
      [&](int64_t r) { rows_all_tokens<1>(m, r, a, y, ldy); });
}

// The constants of the 2:4 gather (Nm24Rows). The gather's: for each register byte, its
// group's offset inside the 16-column activation lane it reads, plus 0x80 (vpshufb: zero)
// in the shuffle of the other 32 columns. The pair codes': each 16-bit half of a dword is
// one group (its two values), and `arrange` puts the two code bytes that hold the
// group's 3 bits into it, `lift` moves the code to bits 13-15 (a multiply by 2^(13 -
// the code's bit in the pair of bytes), AVX2 has no per-element 16-bit shift), and
// `column` maps code + 8 x (which of the two values) to the value's column.
struct Nm24Consts {
  __m256i base0, base1, arrange, lift, second, column;
  Nm24Consts() {
    alignas(32) uint8_t b0[32], b1[32], arr[32], col[32] = {};
    alignas(32) uint16_t lf[16];
    int group_of[32];  // register byte -> group
    for (int k = 0; k < 32; ++k) group_of[nm24_register_byte(k)] = k / 2;
    for (int b = 0; b < 32; ++b) {
      const int dword = b % 16 / 4, e = b % 4;
      const int src = dword % 2, offset = 4 * (2 * (dword / 2) + e / 2);
      b0[b] = uint8_t(offset + (src == 0 ? 0 : 0x80));
      b1[b] = uint8_t(offset + (src == 1 ? 0 : 0x80));
      const int bit = 3 * group_of[b];
      arr[b] = uint8_t(bit / 8 + b % 2);  // the word is broadcast to every 8 bytes
      if (b % 2 == 0) lf[b / 2] = uint16_t(1u << (13 - bit % 8));
    }
    for (int p0 = 0; p0 < 4; ++p0)
      for (int p1 = p0 + 1; p1 < 4; ++p1) {
        const int code = nm24_pair_code(p0, p1);
        col[code] = col[16 + code] = uint8_t(p0);
        col[8 + code] = col[24 + code] = uint8_t(p1);
      }
    base0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b0));
    base1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b1));
    arrange = _mm256_load_si256(reinterpret_cast<const __m256i*>(arr));
    lift = _mm256_load_si256(reinterpret_cast<const __m256i*>(lf));
    second = _mm256_set1_epi16(0x0800);  // + 8 in each group's second (high) byte
    column = _mm256_load_si256(reinterpret_cast<const __m256i*>(col));
  }
};

// The column inside its group of each register byte's value, from a row window's 6 code
// bytes (8 read): a broadcast, a shuffle to bring each group's code bytes to its 16 bits,
// a multiply that lifts the code to the top, a shift down, a multiply by 0x0101 that
// copies it to both bytes, + 8 in the second value's byte, and a table lookup.
inline __m256i nm24_columns(const uint8_t* code, const Nm24Consts& c) {
  uint64_t word;
  std::memcpy(&word, code, 8);
  const __m256i lifted = _mm256_mullo_epi16(_mm256_shuffle_epi8(_mm256_set1_epi64x(int64_t(word)), c.arrange), c.lift);
  const __m256i both = _mm256_mullo_epi16(_mm256_srli_epi16(lifted, 13), _mm256_set1_epi16(0x0101));
  return _mm256_shuffle_epi8(c.column, _mm256_or_si256(both, c.second));
}

// Rows [r, r + R) of a 2:4 matrix against token t; the rows share the activation loads
// and the scale broadcast. Per row and 64 columns: 7 instructions decode the pair codes,
// 2 make the shuffle controls, 3 gather the 32 activations, and 6 multiply and scale.
// R is 4 for a whole interleaved group (r % 4 == 0), whose windows are adjacent, or 1.
template <int R>
void nm24_rows(const Nm24Rows& m, int64_t r, const QuantizedActs& a, int64_t t, const Nm24Consts& c, float* y,
               int64_t ldy) {
  static_assert(R == 1 || R == 4);
  const __m256i ones = _mm256_set1_epi16(1);
  Acc<R, 1> acc = Acc<R, 1>::zero();
  const int8_t* xs = a.signed_row(t);
  const float* bs = a.block_scales(t);
  // Row r + i's window w is at(r, 0) + 4 w + i: at() steps over whole groups of 4.
  const int8_t* values = m.values.data() + 32 * m.at(r, 0);
  const uint8_t* codes = m.codes.data() + kNm24CodeBytes * m.at(r, 0);
  for (int64_t w = 0; w < m.windows; ++w, values += 128, codes += 4 * kNm24CodeBytes) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 64 * w));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 64 * w + 32));
    // Block scales s0 s1 s0 s1 ...: dword parity is the block.
    const __m256 s = _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(bs + 2 * w)));
    // One stream when R = 4 (the rows are interleaved): 128 value bytes a window.
    _mm_prefetch(reinterpret_cast<const char*>(values + kAhead), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(values + kAhead + 64), _MM_HINT_T0);
    if (w % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(codes + kAhead * kNm24CodeBytes / 32), _MM_HINT_T0);
    for (int i = 0; i < R; ++i) {
      const __m256i col = nm24_columns(codes + kNm24CodeBytes * i, c);
      const __m256i g = _mm256_or_si256(_mm256_shuffle_epi8(x0, _mm256_add_epi8(col, c.base0)),
                                        _mm256_shuffle_epi8(x1, _mm256_add_epi8(col, c.base1)));
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + 32 * i));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(g, v)), ones);
      acc.v[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc.v[i][0]);
    }
  }
  store(acc, m.scales.data() + r, r, t, y, ldy);
}

// The constants that expand a 2:4 window back to its 64 dense columns: for each dense
// byte (32 src + 16 lane + o), the register bytes of its group's two values (the same in
// both lanes, as vpshufb reads in-lane), and o % 4, the column a value's position must
// name to land there.
struct Nm24Expand {
  __m256i slot[2][2], column;  // slot[src][which of the group's two]
  Nm24Expand() {
    alignas(32) uint8_t idx[2][2][32], col[32];
    for (int b = 0; b < 32; ++b) {
      const int o = b % 16, gi = o / 4;
      col[b] = uint8_t(o % 4);
      for (int src = 0; src < 2; ++src)
        for (int k = 0; k < 2; ++k) idx[src][k][b] = uint8_t(4 * (2 * (gi / 2) + src) + 2 * (gi % 2) + k);
    }
    for (int src = 0; src < 2; ++src)
      for (int k = 0; k < 2; ++k) slot[src][k] = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx[src][k]));
    column = _mm256_load_si256(reinterpret_cast<const __m256i*>(col));
  }
};

// Row r of a 2:4 matrix decoded to dense int8, block b at tile + 128 b (a panel row).
void expand_nm24_row(const Nm24Rows& m, int64_t r, const Nm24Consts& c, const Nm24Expand& e, int8_t* tile) {
  for (int64_t w = 0; w < m.windows; ++w) {
    const size_t rw = m.at(r, w);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m.values.data() + 32 * rw));
    const __m256i pos = nm24_columns(m.codes.data() + kNm24CodeBytes * rw, c);
    for (int src = 0; src < 2; ++src) {
      __m256i out = _mm256_setzero_si256();
      for (int k = 0; k < 2; ++k) {
        const __m256i here = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(pos, e.slot[src][k]), e.column);
        out = _mm256_or_si256(out, _mm256_and_si256(here, _mm256_shuffle_epi8(v, e.slot[src][k])));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + 128 * (2 * w + src)), out);
    }
  }
}

// A batch of tokens: each group of 4 rows is expanded once into an L1 tile and runs the
// dense kernel over every token. Per token the gather costs its shuffles again, and
// multiplies 32 columns of 64 at the price of 64 (docs/KERNELS.md, "Prefill on AVX2").
void nm24_expanded(const Nm24Rows& m, const QuantizedActs& a, int64_t r0, int64_t r1, const Nm24Consts& c,
                   float* y, int64_t ldy) {
  static const Nm24Expand e;
  thread_local std::vector<int8_t> tile;
  const int64_t blocks = 2 * m.windows;
  if (tile.size() < size_t(blocks * 128)) tile.resize(size_t(blocks * 128));
  by_groups_of_4(
      r0, r1,
      [&](int64_t r) {
        for (int i = 0; i < 4; ++i) expand_nm24_row(m, r + i, c, e, tile.data() + 32 * i);
        rows_all_tokens<4, false>(Panel{tile.data(), 32, 128, blocks, m.scales.data() + r}, r, a, y, ldy);
      },
      [&](int64_t r) {
        expand_nm24_row(m, r, c, e, tile.data());
        rows_all_tokens<1, false>(Panel{tile.data(), 32, 128, blocks, m.scales.data() + r}, r, a, y, ldy);
      });
}

// From this many tokens on, expanding a group once costs less than gathering per token.
constexpr int64_t kExpandTokens = 4;

void nm24(const Nm24Rows& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  static const Nm24Consts c;
  // The two paths sum in different orders: a fixed class keeps to one (TokenClass).
  const bool expand = a.token_class == TokenClass::ByCount ? a.n_tokens >= kExpandTokens
                                                           : a.token_class == TokenClass::Prefill;
  if (expand) return nm24_expanded(m, a, r0, r1, c, y, ldy);
  by_groups_of_4(
      r0, r1, [&](int64_t r) { for (int64_t t = 0; t < a.n_tokens; ++t) nm24_rows<4>(m, r, a, t, c, y, ldy); },
      [&](int64_t r) { for (int64_t t = 0; t < a.n_tokens; ++t) nm24_rows<1>(m, r, a, t, c, y, ldy); });
}

}  // namespace

// Bitmap windows and N:M in the file's layout do not run on AVX2 (2:4 as Nm24Rows, other
// int8 layouts as DenseRows4, prime and codebook as dense fp16 through the float
// matmul); their entries are the scalar kernels. 2:4 int4 runs in place
// (nm24-int4-avx2.cpp).
const Int8Kernels kInt8Avx2 = {"avx2", dense,       nm_scalar, bitmap_scalar,    bitmap_f16_scalar, nullptr,
                               nm24,   dense_rows4, nullptr,   block_quant_avx2, nm24_int4_avx2, nm24_int4_pack_avx2};

}  // namespace upg::kernels

#pragma GCC pop_options
