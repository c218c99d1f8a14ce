// 2:4 int4 (docs/FORMAT.md 4.3) on AVX-512 VNNI + VBMI, read in place from the file's
// parts: no form of its own, so resident memory is the file's. Per 128 columns of a row
// (64 values: 32 bytes of codes, 16 of positions) the weights are made signed once (code -
// zero) and each value's column (4 * group + position) is unpacked once; then per token
// one vpermi2b gathers the 64 activations the values meet from two 64-byte loads, and
// one vpdpbusd multiplies them. That is half the vpdpbusd of dense int4 and 3/4 of its
// bytes. The activations are the unsigned (+128) ones, so each lane's sum carries 128 *
// the sum of its weights, computed per row and taken back before scaling.
// Prefill (16 tokens or more) decodes 4 rows at a time to dense signed int8 and runs the
// int8 kernels' token-major GEMM, as the GGUF forms do.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <vector>

#include "kernels/cpu/int8-gemm-avx512.h"
#include "kernels/cpu/int8-kernels.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx512vbmi2,fma,f16c")

namespace upg::kernels {
namespace {

constexpr int kTile = 4;  // tokens per pass over a row

// One row's part of the matrix: where its parts start and how far they reach.
struct RowParts {
  const uint8_t* codes;       // int4_row_bytes(values)
  const uint8_t* positions;   // pos_bytes
  const uint16_t* scales;     // groups
  const uint8_t* zeros;       // groups, or null (zero 8)
};

struct Geometry {
  int64_t values, code_bytes, pos_bytes, groups, blocks;  // blocks of 128 columns
  int group;
};

Geometry geometry(const format::CompressedMatrix& m) {
  Geometry g;
  g.values = m.values_per_row();
  g.code_bytes = format::int4_row_bytes(g.values);
  g.pos_bytes = format::nm_position_bytes_per_row(m.cols, 2, 4);
  g.group = m.int4.group_size;
  g.groups = format::int4_groups(m.cols, g.group);
  g.blocks = (m.cols + 127) / 128;
  return g;
}

RowParts row_parts(const format::CompressedMatrix& m, const Geometry& g, int64_t r) {
  return {m.int4.codes.data() + r * g.code_bytes, m.nm.positions.data() + r * g.pos_bytes,
          m.int4.group_scales.data() + r * g.groups,
          m.int4.group_zeros.empty() ? nullptr : m.int4.group_zeros.data() + r * g.groups};
}

inline __mmask64 first_bits(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// Sixteen lanes from the first values of v, Per lanes each.
template <int Per>
inline __m512 spread(__m128 v) {
  if constexpr (Per == 16) return _mm512_broadcastss_ps(v);
  const __m512i idx = Per == 8 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                               : _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}

// Block b of a row: lane l of a vpdpbusd sum holds values 4l .. 4l + 3, i.e. columns
// 128b + 8l .. 128b + 8l + 7.
struct Block {
  __m512i s;     // value j's signed weight code - zero in byte j
  __m512i idx;   // value j's column within the block (0..127)
  __m512i corr;  // per lane 128 * the sum of its weights
  __m512 d;      // per lane its group's scale (0 past the last group)
};

template <int Group>
inline Block load_block(const RowParts& p, const Geometry& g, int64_t b) {
  constexpr int kPerBlock = 128 / Group;  // groups per block (1 when Group is 128)
  Block k;
  // Codes: values 64b + i in the low nibbles of 32 bytes, 64b + 32 + i in the high ones.
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.codes + 32 * b));
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(raw, nib)),
                                       _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib), 1);
  // Groups of this block that exist: the last block may hold fewer (padding codes are 0
  // and meet zero activations; their zero and scale read as 0).
  const int64_t g0 = b * kPerBlock, live = std::min<int64_t>(kPerBlock, g.groups - g0);
  __m512i z;
  if (p.zeros) {
    const __m128i zs = _mm_maskz_loadu_epi8(__mmask16((1u << live) - 1), p.zeros + g0);
    // Value j belongs to group j / (Group / 2) of the block.
    alignas(64) static const auto kZeroIdx = [] {
      std::array<uint8_t, 64> a{};
      for (int j = 0; j < 64; ++j) a[size_t(j)] = uint8_t(j / (Group / 2));
      return a;
    }();
    z = _mm512_permutexvar_epi8(_mm512_load_si512(kZeroIdx.data()), _mm512_castsi128_si512(zs));
  } else {
    z = _mm512_set1_epi8(char(format::kInt4DefaultZero));
  }
  k.s = _mm512_sub_epi8(w, z);
  // Positions: value j's 2 bits at bit 2j of 16 bytes. Qword q gets bytes 2q and 2q + 1,
  // from which one multishift takes each of its 8 values' fields.
  const int64_t pos_left = std::min<int64_t>(16, g.pos_bytes - 16 * b);
  const __m128i pos = _mm_maskz_loadu_epi8(__mmask16((1u << pos_left) - 1), p.positions + 16 * b);
  const __m512i spread_idx = _mm512_set_epi64(0x0f0e0f0e0f0e0f0e, 0x0d0c0d0c0d0c0d0c, 0x0b0a0b0a0b0a0b0a,
                                              0x0908090809080908, 0x0706070607060706, 0x0504050405040504,
                                              0x0302030203020302, 0x0100010001000100);
  const __m512i q = _mm512_permutexvar_epi8(spread_idx, _mm512_castsi128_si512(pos));
  const __m512i fields = _mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x0e0c0a0806040200), q);
  alignas(64) static const auto kBase = [] {
    std::array<uint8_t, 64> a{};
    for (int j = 0; j < 64; ++j) a[size_t(j)] = uint8_t(4 * (j / 2));
    return a;
  }();
  k.idx = _mm512_add_epi8(_mm512_and_si512(fields, _mm512_set1_epi8(3)), _mm512_load_si512(kBase.data()));
  k.corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), k.s);
  const __m128 dh = _mm_cvtph_ps(_mm_maskz_loadu_epi16(__mmask8((1u << live) - 1), p.scales + g0));
  k.d = spread<Group == 32 ? 4 : Group == 64 ? 8 : 16>(dh);
  return k;
}

// The activations' scales of block b (four 32-column blocks) as lanes.
inline __m512 act_lanes(const float* s, int64_t b) { return spread<4>(_mm_loadu_ps(s + 4 * b)); }

template <int NT, int Group>
void tile(const format::CompressedMatrix& m, const Geometry& g, const QuantizedActs& a, int64_t t0, int64_t r0,
          int64_t r1, float* y, int64_t ldy) {
  const uint8_t* x[NT];
  const float* bs[NT];
  for (int j = 0; j < NT; ++j) x[j] = a.row(t0 + j), bs[j] = a.block_scales(t0 + j);
  for (int64_t r = r0; r < r1; ++r) {
    const RowParts p = row_parts(m, g, r);
    __m512 acc[NT];
    for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < g.blocks; ++b) {
      const Block k = load_block<Group>(p, g, b);
      for (int j = 0; j < NT; ++j) {
        const __m512i lo = _mm512_loadu_si512(x[j] + 128 * b), hi = _mm512_loadu_si512(x[j] + 128 * b + 64);
        const __m512i xs = _mm512_permutex2var_epi8(lo, k.idx, hi);
        const __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xs, k.s), k.corr);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(k.d, act_lanes(bs[j], b)), acc[j]);
      }
    }
    for (int j = 0; j < NT; ++j) y[(t0 + j) * ldy + r] = _mm512_reduce_add_ps(acc[j]);
  }
}

// ---- Prefill: rows decoded to dense signed int8, then the token-major GEMM ----
struct GemmScratch {
  std::vector<int8_t> w;         // [kGemmRows, stride]
  std::vector<int32_t> starts;   // [kGemmRows, stride / 32]: -128 * sum of each block's weights
  std::vector<float> scales;     // [kGemmRows, stride / 32]
};
thread_local GemmScratch tls_gemm;

template <class T>
T* at_least(std::vector<T>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
  return v.data();
}

// Block b of a row as 128 dense int8 columns: column 4h + c takes value 2h if its
// position is c, value 2h + 1 if that one's is, else 0 (a group's two positions differ).
template <int Group>
void decode_block(const Block& k, int8_t* out) {
  for (int half = 0; half < 2; ++half) {
    alignas(64) static const auto kSlot = [] {
      std::array<std::array<uint8_t, 64>, 2> a{};
      for (int h = 0; h < 2; ++h)
        for (int c = 0; c < 64; ++c) a[size_t(h)][size_t(c)] = uint8_t(32 * h + 2 * (c / 4));
      return a;
    }();
    const __m512i first = _mm512_load_si512(kSlot[size_t(half)].data());
    const __m512i second = _mm512_add_epi8(first, _mm512_set1_epi8(1));
    alignas(64) static const auto kCol = [] {
      std::array<uint8_t, 64> a{};
      for (int c = 0; c < 64; ++c) a[size_t(c)] = uint8_t(c);
      return a;
    }();
    const __m512i col = _mm512_add_epi8(_mm512_load_si512(kCol.data()), _mm512_set1_epi8(char(64 * half)));
    const __mmask64 m0 = _mm512_cmpeq_epi8_mask(_mm512_permutexvar_epi8(first, k.idx), col);
    const __mmask64 m1 = _mm512_cmpeq_epi8_mask(_mm512_permutexvar_epi8(second, k.idx), col);
    __m512i v = _mm512_maskz_mov_epi8(m0, _mm512_permutexvar_epi8(first, k.s));
    v = _mm512_mask_mov_epi8(v, m1, _mm512_permutexvar_epi8(second, k.s));
    _mm512_storeu_si512(out + 64 * half, v);
  }
}

template <int Group>
void gemm(const format::CompressedMatrix& m, const Geometry& g, const QuantizedActs& a, int64_t r0, int64_t r1,
          float* y, int64_t ldy) {
  GemmScratch& sc = tls_gemm;
  const int64_t stride = a.stride, subs = stride / kActBlock;
  int8_t* w = at_least(sc.w, kGemmRows * stride);
  int32_t* starts = at_least(sc.starts, kGemmRows * subs);
  float* scales = at_least(sc.scales, kGemmRows * subs);
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  for (int64_t r = r0; r < r1; r += kGemmRows) {
    const int n = int(std::min<int64_t>(kGemmRows, r1 - r));
    for (int i = 0; i < n; ++i) {
      const RowParts p = row_parts(m, g, r + i);
      int8_t* dst = w + i * stride;
      for (int64_t b = 0; b < g.blocks; ++b) {
        const Block k = load_block<Group>(p, g, b);
        decode_block<Group>(k, dst + 128 * b);
        for (int half = 0; half < 2; ++half) {
          // 128 * the sum of each 4 columns; a 32-column block spans 8 lanes.
          const __m512i lanes =
              _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, _mm512_loadu_si512(dst + 128 * b + 64 * half));
          for (int q = 0; q < 2; ++q) {
            const int64_t s = 4 * b + 2 * half + q;
            starts[i * subs + s] = -_mm512_mask_reduce_add_epi32(__mmask16(0xFFu << (8 * q)), lanes);
            const int64_t group = s * kActBlock / Group;
            scales[i * subs + s] = group < g.groups ? _cvtsh_ss(p.scales[group]) : 0.0f;
          }
        }
      }
      std::fill(dst + 128 * g.blocks, dst + stride, int8_t(0));
      for (int64_t s = 4 * g.blocks; s < subs; ++s) starts[i * subs + s] = 0, scales[i * subs + s] = 0;
    }
    const GemmRows rows{w, stride, 4, starts, subs, 1, int(kActBlock), subs, scales, nullptr, nullptr};
    gemm_rows_avx512(n, rows, a, r, nullptr, y, ldy);
  }
}

template <int Group>
void run(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const Geometry g = geometry(m);
  if (a.groups > 0) return gemm<Group>(m, g, a, r0, r1, y, ldy);
  int64_t t = 0;
  for (; t + kTile <= a.n_tokens; t += kTile) tile<kTile, Group>(m, g, a, t, r0, r1, y, ldy);
  switch (a.n_tokens - t) {
    case 3: tile<3, Group>(m, g, a, t, r0, r1, y, ldy); break;
    case 2: tile<2, Group>(m, g, a, t, r0, r1, y, ldy); break;
    case 1: tile<1, Group>(m, g, a, t, r0, r1, y, ldy); break;
    default: break;
  }
}

}  // namespace

void nm24_int4_avx512(const format::CompressedMatrix& m, const uint8_t* /*positions: the file's*/,
                      const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  switch (m.int4.group_size) {
    case 32: return run<32>(m, a, r0, r1, y, ldy);
    case 64: return run<64>(m, a, r0, r1, y, ldy);
    default: return run<128>(m, a, r0, r1, y, ldy);
  }
}

}  // namespace upg::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
