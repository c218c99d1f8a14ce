// block_quant on AVX2: per 32 columns vpmaddubsw (u8 x s8 pairs to s16) and vpmaddwd
// (pairs to s32), one float conversion and one multiply-add by the product of the weight
// and activation scales. vpmaddubsw saturates past 32767: codes of up to 6 bits stay
// under it as they are (63 * 127 * 2), but 8-bit codes (Q8_0) and IQ4 table values
// (up to 241) go in signed, as the int8 kernels do (|w| and the activation taking w's
// sign), which takes 128 * sum(a) off every sub-block's sum: the second sum adds it back
// with 128 * d (and for those types it then cancels their offset of -128 exactly).
#include <immintrin.h>

#include "upg/format/ggml-blocks.h"
#include "kernels/cpu/block-quant.h"
#include "kernels/cpu/int8-kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace upg::kernels {
namespace {

constexpr int64_t kAhead = 8192;  // prefetch distance on the code stream, as the int8 kernels

inline float hsum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// sum_s m'[s] * sums[s], m' = (m[s] or offset * d[s]) + (Signed ? 128 * d[s] : 0).
template <bool Signed>
float min_term(const BlockQuantRows& m, int64_t r, const float* sums) {
  const float k = (m.has_min ? 0.0f : m.offset) + (Signed ? 128.0f : 0.0f);
  const uint16_t* d = m.row_d(r);
  const uint16_t* mm = m.has_min ? m.row_m(r) : nullptr;
  __m256 acc = _mm256_setzero_ps();
  int64_t s = 0;
  if (mm && k == 0.0f) {  // minimums alone (Q4_1, Q5_K, int4 with zero points): no d term
    for (; s + 8 <= m.subs; s += 8)
      acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mm + s))),
                            _mm256_loadu_ps(sums + s), acc);
  }
  for (; s + 8 <= m.subs; s += 8) {
    __m256 v = _mm256_mul_ps(_mm256_set1_ps(k), _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + s))));
    if (mm) v = _mm256_add_ps(v, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mm + s))));
    acc = _mm256_fmadd_ps(v, _mm256_loadu_ps(sums + s), acc);
  }
  float t = hsum8(acc);
  for (; s < m.subs; ++s) t += (k * _cvtsh_ss(d[s]) + (mm ? _cvtsh_ss(mm[s]) : 0.0f)) * sums[s];
  return t;
}

// 32 bits as 32 bytes: 0xFF where the bit is set (byte i from bit i).
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(bits)), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                                     2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i select = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

// Codes of 32 columns, 64v + 32 half + (0..31) of the row; `high` is the row's high-bit
// planes (5 and 6 bits), one 64-bit word per plane and 64 columns.
template <int Bits, bool Lut>
inline __m256i codes32(const uint8_t* codes, const uint8_t* high, int64_t v, int half, __m256i lut) {
  if constexpr (Bits == 8) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 64 * v + 32 * half));
  } else if constexpr (Bits <= 3) {  // planes only: bit j of every code from word j
    __m256i w = _mm256_setzero_si256();
    for (int j = 0; j < Bits; ++j) {
      uint32_t plane;
      __builtin_memcpy(&plane, high + (Bits * v + j) * 8 + 4 * half, 4);
      w = _mm256_or_si256(w, _mm256_and_si256(bits_to_bytes(plane), _mm256_set1_epi8(char(1 << j))));
    }
    return w;
  } else {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * v));
    __m256i w = _mm256_and_si256(half ? _mm256_srli_epi16(p, 4) : p, _mm256_set1_epi8(0x0F));
    for (int j = 0; j < Bits - 4; ++j) {
      uint32_t plane;
      __builtin_memcpy(&plane, high + ((Bits - 4) * v + j) * 8 + 4 * half, 4);
      w = _mm256_or_si256(w, _mm256_and_si256(bits_to_bytes(plane), _mm256_set1_epi8(char(16 << j))));
    }
    if constexpr (Lut) return _mm256_shuffle_epi8(lut, w);
    return w;
  }
}

// The weight scales of 32 columns as 8 lanes (lane i: columns 4i..4i+3).
template <int Sub>
inline __m256 weight_lanes(const uint16_t* d) {
  if constexpr (Sub >= 32) return _mm256_set1_ps(_cvtsh_ss(d[0]));  // int4 groups of 64 and 128 too
  return _mm256_set_m128(_mm_set1_ps(_cvtsh_ss(d[1])), _mm_set1_ps(_cvtsh_ss(d[0])));
}

// R rows from r against NT tokens. With 4-bit nibbles (Q4_0, Q4_1, UPG int4) one token
// takes four rows side by side: a row of the default model's width is 9 steps of 64
// columns, and alone its accumulator chain, final sum and zero-point pass kept the next
// row's loads waiting (four rows beat two by 5-15% on the default model's int4 files).
// Q8_0 (the default model's LM head) was slower with two, and the other forms were not
// measured: they keep one row.
template <int NT, int R, int Bits, int Sub, bool Lut>
inline void rows(const BlockQuantRows& m, const float* sums, const int8_t* const (&xq)[NT],
                 const float* const (&bs)[NT], int64_t t0, int64_t r, float* y, int64_t ldy) {
  constexpr bool kSigned = Bits == 8 || Lut;
  constexpr int64_t kVecBytes = Bits == 8 ? 64 : Bits <= 3 ? 8 * Bits : 32;  // on the nibble (or plane) stream
  const int64_t nv = m.padded_cols / 64;
  const __m256i lut = Lut ? _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(format::kIq4Lut)))
                          : _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(char(0x80));
  const uint8_t* codes[R];
  const uint8_t* high[R];
  const uint16_t* d[R];
  __m256 acc[R][NT];
  for (int i = 0; i < R; ++i) {
    codes[i] = m.row_codes(r + i), high[i] = m.row_high(r + i), d[i] = m.row_d(r + i);
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  for (int64_t v = 0; v < nv; ++v) {
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(codes[i] + kVecBytes * v + kAhead), _MM_HINT_T0);
      for (int half = 0; half < 2; ++half) {
        __m256i w = codes32<Bits, Lut>(codes[i], high[i], v, half, lut);
        if constexpr (kSigned) w = _mm256_xor_si256(w, flip);  // code - 128, signed
        const __m256i uw = kSigned ? _mm256_sign_epi8(w, w) : w;
        const __m256 wd = weight_lanes<Sub>(d[i] + (64 * v + 32 * half) / Sub);
        const int64_t block = 2 * v + half;
        for (int j = 0; j < NT; ++j) {
          __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[j] + 32 * block));
          if constexpr (kSigned) x = _mm256_sign_epi8(x, w);
          const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(uw, x), ones);
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(wd, _mm256_set1_ps(bs[j][block])), acc[i][j]);
        }
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NT; ++j)
      y[(t0 + j) * ldy + r + i] = hsum8(acc[i][j]) + min_term<kSigned>(m, r + i, sums + (t0 + j) * m.subs);
}

template <int NT, int Bits, int Sub, bool Lut>
void tile(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t t0, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  constexpr int R = NT == 1 && Bits == 4 && !Lut ? 4 : 1;
  const int8_t* xq[NT];
  const float* bs[NT];
  for (int j = 0; j < NT; ++j) xq[j] = a.signed_row(t0 + j), bs[j] = a.block_scales(t0 + j);
  int64_t r = r0;
  for (; r + R <= r1; r += R) rows<NT, R, Bits, Sub, Lut>(m, sums, xq, bs, t0, r, y, ldy);
  for (; r < r1; ++r) rows<NT, 1, Bits, Sub, Lut>(m, sums, xq, bs, t0, r, y, ldy);
}

template <int Bits, int Sub, bool Lut>
void over_tokens(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1, float* y,
                 int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= a.n_tokens; t += 4) tile<4, Bits, Sub, Lut>(m, a, sums, t, r0, r1, y, ldy);
  for (; t < a.n_tokens; ++t) tile<1, Bits, Sub, Lut>(m, a, sums, t, r0, r1, y, ldy);
}

}  // namespace

void block_quant_avx2(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1,
                      float* y, int64_t ldy) {
  for_form(m, [&]<int Bits, int Sub, bool Lut>() { over_tokens<Bits, Sub, Lut>(m, a, sums, r0, r1, y, ldy); });
}

}  // namespace upg::kernels

#pragma GCC pop_options
