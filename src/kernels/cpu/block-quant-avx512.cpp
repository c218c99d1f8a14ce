// block_quant on AVX-512 VNNI: per 64 columns one vpdpbusd with the weight codes as its
// unsigned operand and the signed activations as the other, one float conversion, and
// one multiply-add by the product of the weight's and the activations' lane scales.
// 4-bit codes come as 32 bytes split into low and high nibbles (IQ4 through one in-lane
// byte shuffle from the table), 5- and 6-bit codes so plus one masked add per high-bit
// plane; 8-bit codes as 64 bytes. Prefill (16 tokens or more)
// runs the int8 kernels' token-major GEMM instead (int8-gemm-avx512.h).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "upg/format/ggml-blocks.h"
#include "kernels/cpu/block-quant.h"
#include "kernels/cpu/int8-gemm-avx512.h"
#include "kernels/cpu/int8-kernels.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")

namespace upg::kernels {
namespace {

constexpr int kTile = 8;            // tokens per pass over a row
constexpr int64_t kPrefetch = 8192;  // bytes ahead on the code stream, as the int8 kernels

// Sixteen lanes from the first values of v, Per lanes each: lane i of a vpdpbusd sum holds
// columns 4i..4i+3, so a 32-column scale covers 8 lanes and a 16-column one 4.
template <int Per>
inline __m512 spread(__m128 v) {
  const __m512i idx = Per == 8 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                               : _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}

// The weight scales of 64 columns as lanes: two fp16 values (Sub 32), four (Sub 16), or
// one for all (the int4 groups of 64 and 128).
template <int Sub>
inline __m512 weight_lanes(const uint16_t* d) {
  if constexpr (Sub >= 64) {
    return _mm512_set1_ps(_cvtsh_ss(d[0]));
  } else if constexpr (Sub == 32) {
    int32_t two;
    __builtin_memcpy(&two, d, 4);
    return spread<8>(_mm_cvtph_ps(_mm_cvtsi32_si128(two)));
  } else {
    return spread<4>(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d))));
  }
}

// The activations' block scales of 64 columns (two 32-column blocks) as lanes.
inline __m512 act_lanes(const float* s) {
  return spread<8>(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(s))));
}

// sum_s (m[s] or offset * d[s]) * sums[s] over a row's sub-blocks.
inline float min_term(const BlockQuantRows& m, int64_t r, const float* sums) {
  const uint16_t* src = m.has_min ? m.row_m(r) : m.row_d(r);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t s = 0; s < m.subs; s += 16) {
    const __mmask16 k = m.subs - s >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (m.subs - s)) - 1);
    const __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, src + s));
    acc = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(k, sums + s), acc);
  }
  const float t = _mm512_reduce_add_ps(acc);
  return m.has_min ? t : m.offset * t;
}

// Codes of columns 64v .. 64v + 63 as bytes; `high` is the row's high-bit planes (5 and
// 6 bits), whose 64-bit words are byte masks as they stand.
template <int Bits, bool Lut>
inline __m512i codes64(const uint8_t* codes, const uint8_t* high, int64_t v, __m512i lut) {
  if constexpr (Bits == 8) {
    return _mm512_loadu_si512(codes + 64 * v);
  } else if constexpr (Bits <= 3) {  // planes only: bit j of every code from word j
    __m512i w = _mm512_setzero_si512();
    for (int j = 0; j < Bits; ++j) {
      uint64_t plane;
      __builtin_memcpy(&plane, high + (Bits * v + j) * 8, 8);
      w = _mm512_mask_add_epi8(w, __mmask64(plane), w, _mm512_set1_epi8(char(1 << j)));
    }
    return w;
  } else {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * v));
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(p, low), hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), low);
    __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    for (int j = 0; j < Bits - 4; ++j) {
      uint64_t plane;
      __builtin_memcpy(&plane, high + ((Bits - 4) * v + j) * 8, 8);
      w = _mm512_mask_add_epi8(w, __mmask64(plane), w, _mm512_set1_epi8(char(16 << j)));
    }
    if constexpr (Lut) return _mm512_shuffle_epi8(lut, w);
    return w;
  }
}

template <int NT, int Bits, int Sub, bool Lut>
void tile(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t t0, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  constexpr int A = 2;  // two chains per token in every tile size: kAcc in int8-avx512.cpp says why
  constexpr int64_t kVecBytes = Bits == 8 ? 64 : Bits <= 3 ? 8 * Bits : 32;  // on the nibble (or plane) stream
  const int64_t nv = m.padded_cols / 64;
  const __m512i lut = Lut ? _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(format::kIq4Lut)))
                          : _mm512_setzero_si512();
  const int8_t* xq[NT];
  const float* bs[NT];
  const float* lanes[NT];
  for (int j = 0; j < NT; ++j)
    xq[j] = a.signed_row(t0 + j), bs[j] = a.block_scales(t0 + j), lanes[j] = a.vector_lane_scales(t0 + j);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* codes = m.row_codes(r);
    const uint8_t* high = m.row_high(r);
    const uint16_t* d = m.row_d(r);
    __m512 f[A][NT];
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < NT; ++j) f[i][j] = _mm512_setzero_ps();
    auto step = [&](int64_t v, __m512(&acc)[NT]) {
      _mm_prefetch(reinterpret_cast<const char*>(codes + kVecBytes * v + kPrefetch), _MM_HINT_T0);
      const __m512i w = codes64<Bits, Lut>(codes, high, v, lut);
      const __m512 wd = weight_lanes<Sub>(d + v * 64 / Sub);
      for (int j = 0; j < NT; ++j) {
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(xq[j] + 64 * v));
        // With a tile of tokens the vector math sets the pace, and the precomputed lane
        // scales save a permute per token; a lone token is bound by loads instead.
        const __m512 as = NT >= 4 ? _mm512_loadu_ps(lanes[j] + 16 * v) : act_lanes(bs[j] + 2 * v);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(wd, as), acc[j]);
      }
    };
    int64_t v = 0;
    for (; v + A <= nv; v += A)
      for (int i = 0; i < A; ++i) step(v + i, f[i]);
    for (; v < nv; ++v) step(v, f[0]);
    for (int j = 0; j < NT; ++j) {
      __m512 t = f[0][j];
      for (int i = 1; i < A; ++i) t = _mm512_add_ps(t, f[i][j]);
      y[(t0 + j) * ldy + r] = _mm512_reduce_add_ps(t) + min_term(m, r, sums + (t0 + j) * m.subs);
    }
  }
}

template <int Bits, int Sub, bool Lut>
void over_tokens(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1, float* y,
                 int64_t ldy) {
  int64_t t = 0;
  for (; t + kTile <= a.n_tokens; t += kTile) tile<kTile, Bits, Sub, Lut>(m, a, sums, t, r0, r1, y, ldy);
  if (a.n_tokens - t >= 4) {
    tile<4, Bits, Sub, Lut>(m, a, sums, t, r0, r1, y, ldy);
    t += 4;
  }
  switch (a.n_tokens - t) {
    case 3: tile<3, Bits, Sub, Lut>(m, a, sums, t, r0, r1, y, ldy); break;
    case 2: tile<2, Bits, Sub, Lut>(m, a, sums, t, r0, r1, y, ldy); break;
    case 1: tile<1, Bits, Sub, Lut>(m, a, sums, t, r0, r1, y, ldy); break;
    default: break;
  }
}

// ---- Prefill (a.groups > 0): the token-major GEMM of the int8 kernels ----
// Rows are decoded 4 at a time to signed int8, each weight's integer part: code + offset
// for the types without a min (Q4_0 -8, Q8_0 and the IQ4 table -128, Q6_K -32, ...),
// which fits int8 for every one of them, so that only the types with a min keep a term
// apart. Each sub-block's sum is then scaled by its d, as the dense GEMM scales a block.

// Per-thread buffers: sized by the first prefill, reused after.
struct GemmScratch {
  std::vector<int8_t> w;            // [kGemmRows, stride]
  std::vector<int32_t> starts;      // [kGemmRows, subs]: -128 * sum of each sub-block's weights
  std::vector<float> scales, mins;  // [kGemmRows, subs]
  std::vector<float> act_sums;      // [groups, subs, 16]: block_sums token-major
};
thread_local GemmScratch tls_gemm;

template <class T>
T* at_least(std::vector<T>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
  return v.data();
}

// Groups wider than an activation block (int4 groups of 64 and 128) run as sub-blocks of
// 32 whose scales repeat; their mins are added apart, from the call's per-group sums.
template <int Bits, int Group, bool Lut>
void gemm(const BlockQuantRows& m, const QuantizedActs& a, const float* group_sums, int64_t r0, int64_t r1, float* y,
          int64_t ldy) {
  constexpr int Sub = Group > 32 ? 32 : Group;
  constexpr bool kWide = Group > 32;
  GemmScratch& sc = tls_gemm;
  const int64_t subs = kWide ? m.padded_cols / Sub : m.subs, stride = a.stride, nv = m.padded_cols / 64;
  const float* sums = group_sums;
  int8_t* w = at_least(sc.w, kGemmRows * stride);
  int32_t* starts = at_least(sc.starts, kGemmRows * subs);
  float* scales = at_least(sc.scales, kGemmRows * subs);
  float* mins = at_least(sc.mins, kGemmRows * subs);
  float* act_sums = at_least(sc.act_sums, a.groups * subs * 16);
  if (m.has_min && !kWide)
    for (int64_t g = 0; g < a.groups; ++g)
      for (int64_t s = 0; s < subs; ++s)
        for (int j = 0; j < 16; ++j) {
          const int64_t t = 16 * g + j;
          act_sums[(g * subs + s) * 16 + j] = t < a.n_tokens ? sums[t * subs + s] : 0.0f;
        }
  const __m512i lut = Lut ? _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(format::kIq4Lut)))
                          : _mm512_setzero_si512();
  const __m512i offset = _mm512_set1_epi8(char(m.has_min ? 0 : int(m.offset)));
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  for (int64_t r = r0; r < r1; r += kGemmRows) {
    const int n = int(std::min<int64_t>(kGemmRows, r1 - r));
    for (int i = 0; i < n; ++i) {
      const uint8_t* codes = m.row_codes(r + i);
      const uint8_t* high = m.row_high(r + i);
      int8_t* dst = w + i * stride;
      int32_t* st = starts + i * subs;
      for (int64_t v = 0; v < nv; ++v) {
        const __m512i wv = _mm512_add_epi8(codes64<Bits, Lut>(codes, high, v, lut), offset);
        _mm512_storeu_si512(dst + 64 * v, wv);
        // 128 * the sum of each 4 columns; a sub-block spans 8 lanes (Sub 32) or 4.
        const __m512i lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, wv);
        constexpr unsigned kLanes = (1u << (Sub / 4)) - 1;
        for (int k = 0; k < 64 / Sub; ++k)
          st[v * (64 / Sub) + k] = -_mm512_mask_reduce_add_epi32(__mmask16(kLanes << (k * Sub / 4)), lanes);
      }
      std::memset(dst + m.padded_cols, 0, size_t(stride - m.padded_cols));
      for (int64_t s = 0; s < subs; ++s) {
        scales[i * subs + s] = _cvtsh_ss(m.row_d(r + i)[s * Sub / Group]);
        if (m.has_min && !kWide) mins[i * subs + s] = _cvtsh_ss(m.row_m(r + i)[s]);
      }
    }
    const bool min_here = m.has_min && !kWide;
    const GemmRows rows{w, stride, 4, starts, subs, 1, Sub, subs, scales, min_here ? mins : nullptr, act_sums};
    gemm_rows_avx512(n, rows, a, r, nullptr, y, ldy);
  }
  if (m.has_min && kWide) {
    // The min (zero-point) term of groups wider than the GEMM's 32-column sub-blocks, 16
    // rows to a vector: y[t, r] += sum_s m[r, s] * sums[t, s]. Scalar, with a conversion
    // per row, token and group, it took a third of a 128-token prompt at groups of 128.
    float* mt = at_least(sc.mins, m.subs * 16);  // [subs][16 rows], rows past r1 zero
    for (int64_t r = r0; r < r1; r += 16) {
      const int n = int(std::min<int64_t>(16, r1 - r));
      for (int64_t s = 0; s < m.subs; ++s)
        for (int i = 0; i < 16; ++i) mt[s * 16 + i] = i < n ? _cvtsh_ss(m.row_m(r + i)[s]) : 0.0f;
      const __mmask16 keep = __mmask16((1u << n) - 1);
      for (int64_t t = 0; t < a.n_tokens; ++t) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t s = 0; s < m.subs; ++s)
          acc = _mm512_fmadd_ps(_mm512_set1_ps(sums[t * m.subs + s]), _mm512_loadu_ps(mt + s * 16), acc);
        float* yt = y + t * ldy + r;
        _mm512_mask_storeu_ps(yt, keep, _mm512_add_ps(_mm512_maskz_loadu_ps(keep, yt), acc));
      }
    }
  }
}

}  // namespace

void block_quant_avx512(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1,
                        float* y, int64_t ldy) {
  for_form(m, [&]<int Bits, int Sub, bool Lut>() {
    if (a.groups > 0) gemm<Bits, Sub, Lut>(m, a, sums, r0, r1, y, ldy);
    else over_tokens<Bits, Sub, Lut>(m, a, sums, r0, r1, y, ldy);
  });
}

}  // namespace upg::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
