// 2:4 int4 (docs/FORMAT.md 4.3) on AVX2, from the file's codes, scales and zeros as on
// AVX-512 (nm24-int4-avx512.cpp) and its positions put in this kernel's order at load,
// so it streams the file's 3 bits a weight (plus group scales) where the dense int4 form
// it replaces streamed 4.
//
// AVX2 has no cross-lane byte permute, so the gather works per 128-bit lane. A 32-byte
// load of codes holds values 64b + i in its low nibbles (columns 128b .. 128b + 63) and
// 64b + 32 + i in its high ones (the next 64 columns); unpacked to bytes, each is a
// register of 32 values whose lane L covers 32 columns, 16 from each of two 16-column
// chunks: bytes 0-7 of a lane (4 groups of 4 columns) meet the first chunk, bytes 8-15
// the second. The activations are rearranged once per call so that those chunks are
// the lanes of two 32-byte loads (arrange, below); then per token a `vpshufb` of each
// by the values' column within the chunk (4 * group + position) and a `vpblendd`
// gather the register's 32 activations, and `vpmaddubsw` + `vpmaddwd` multiply them
// with the signed weights (code - zero, made |w| and the activation w's sign as the
// int8 kernels do: at most 2 * 15 * 127, no saturation). Dword lane l of a half's sum
// holds values 4l .. 4l + 3, all in one 32-column activation block; the two halves' sums
// are merged (block, below) so that one conversion, one scale product and one FMA serve
// a block of 128 columns and a token.
//
// The columns come from the 2-bit positions on the fly (a table of byte indices would
// cost the bytes the layout saves), in three instructions per 32 values: the positions
// are put in this kernel's order once at load (nm24_int4_pack_avx2: as many bytes as the
// file's, which go back to the page cache), 8 bytes a register half whose every qword
// holds the fields of 8 of its values at bits 2q (packed_place); a broadcast of them, a
// `vpsrlvq` by [0, 2, 4, 6], an AND with 3 and an add of 4 * the group's place in its
// chunk give the byte indices. Reading the file's order took seven, and two constant
// registers more, in a loop that has none to spare.
//
// Tokens are taken 4 at a time, each with its own accumulators in the same order, so a
// token's result does not depend on how many share the call (TokenClass): prefill runs
// the same kernel, which multiplies half the columns of dense int4 per token. One token
// takes three rows side by side and two tokens two (rows, below), and whether the file
// has zero points is a template parameter: with a runtime test GCC re-materialized
// constants in the block loop, which has few registers to spare.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/int8-kernels.h"
#include "upg/core/error.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace upg::kernels {
namespace {

constexpr int kTile = 4;          // tokens per pass over a row
constexpr int64_t kPosBytes = 16;  // a block's packed positions: 64 values, 2 bits each
constexpr int64_t kAhead = 4096;  // prefetch distance on the code stream, bytes (positions: half)

// One matrix's parts and per-row sizes.
struct Geometry {
  int64_t code_bytes, pos_bytes, groups, blocks;  // blocks of 128 columns
  bool last_hi;  // whether the last block has columns in its second 64 (its high nibbles)
};

Geometry geometry(const format::CompressedMatrix& m) {
  Geometry g;
  g.code_bytes = format::int4_row_bytes(m.values_per_row());
  g.groups = format::int4_groups(m.cols, m.int4.group_size);
  g.blocks = (m.cols + 127) / 128;
  g.pos_bytes = kPosBytes * g.blocks;  // packed: whole blocks
  g.last_hi = m.cols - 128 * (g.blocks - 1) > 64;
  return g;
}

// The parts of one 128-column block of a row.
struct BlockParts {
  const uint8_t* codes;      // 32 bytes
  const uint8_t* positions;  // 16 bytes (20 read)
  const uint16_t* scales;    // 128 / Group (4 read)
  const uint8_t* zeros;      // 128 / Group, or null (symmetric: zero 8)
};

// The constant vectors of the position decode.
struct Consts {
  __m256i shifts;  // qword q of a register half: its values' fields are at bits 2q, 2q + 1
  __m256i mask3;   // a field's two bits
  __m256i base;    // 4 * each group's place in its 16-column chunk
  Consts() {
    alignas(32) uint8_t b[32];
    for (int j = 0; j < 32; ++j) b[j] = uint8_t(4 * ((j % 16 / 2) % 4));  // byte j % 16 of a lane: group j % 16 / 2
    shifts = _mm256_setr_epi64x(0, 2, 4, 6);
    mask3 = _mm256_set1_epi8(3);
    base = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
  }
};

// Which of a block's groups the values of register half h, 128-bit lane L are in.
template <int Group>
constexpr int group_of(int h, int lane) {
  return (32 * h + 16 * lane) / (Group / 2);
}

// Register half h (values 64b + 32h ..) of a block, ready for every token.
struct Half {
  __m256i idx;  // each value's activation byte within its 16-column chunk
  __m256i s;    // signed weight: code - zero
  __m256i aw;   // |s|
};

template <int Group, bool Zp>
inline Half decode_half(const uint8_t* positions, const __m256i codes, const uint8_t* zeros, int h, const Consts& c) {
  Half out;
  uint64_t qw;
  std::memcpy(&qw, positions + 8 * h, 8);
  const __m256i u = _mm256_srlv_epi64(_mm256_set1_epi64x(int64_t(qw)), c.shifts);
  out.idx = _mm256_add_epi8(_mm256_and_si256(u, c.mask3), c.base);
  const __m256i q = _mm256_and_si256(h ? _mm256_srli_epi16(codes, 4) : codes, _mm256_set1_epi8(0x0F));
  __m256i z = _mm256_set1_epi8(char(format::kInt4DefaultZero));
  if constexpr (Zp) {
    if constexpr (Group == 32) {  // one zero per lane: two of the block's four
      uint32_t zs;
      std::memcpy(&zs, zeros, 4);
      const int a = group_of<Group>(h, 0), b = group_of<Group>(h, 1);
      z = _mm256_shuffle_epi8(_mm256_set1_epi32(int(zs)), _mm256_setr_epi64x(a * 0x0101010101010101LL,
                                                                            a * 0x0101010101010101LL,
                                                                            b * 0x0101010101010101LL,
                                                                            b * 0x0101010101010101LL));
    } else {
      z = _mm256_set1_epi8(char(zeros[group_of<Group>(h, 0)]));
    }
  }
  out.s = _mm256_sub_epi8(q, z);
  out.aw = _mm256_abs_epi8(out.s);
  return out;
}

// The activations of each token, per 64 columns in the order the gather reads them
// (columns 0-15 and 32-47, the lanes of the first load, then 16-31 and 48-63), and per
// 128 columns their block scales in the lanes of a block's merged sums (tile, below):
// blocks 0, 0, 2, 2, 1, 1, 3, 3.
struct Arranged {
  std::vector<int8_t> x;      // [n_tokens, stride]
  std::vector<float> scales;  // [n_tokens, stride / 128, 8]
};

void arrange(const QuantizedActs& a, Arranged& out) {
  const int64_t blocks = a.stride / 128;
  if (out.x.size() < size_t(a.n_tokens * a.stride)) out.x.resize(size_t(a.n_tokens * a.stride));
  if (out.scales.size() < size_t(a.n_tokens * blocks * 8)) out.scales.resize(size_t(a.n_tokens * blocks * 8));
  const __m256i order = _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3);
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    const int8_t* x = a.signed_row(t);
    int8_t* o = out.x.data() + t * a.stride;
    for (int64_t c = 0; c < a.stride; c += 64) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + c));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + c + 32));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + c), _mm256_permute2x128_si256(x0, x1, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + c + 32), _mm256_permute2x128_si256(x0, x1, 0x31));
    }
    const float* bs = a.block_scales(t);
    float* so = out.scales.data() + t * blocks * 8;
    for (int64_t b = 0; b < blocks; ++b)
      _mm256_storeu_ps(so + 8 * b, _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(bs + 4 * b)), order));
  }
}

// A row's scales and zeros copied into buffers padded with zeros to whole blocks (p's
// codes are whole blocks in the file, its packed positions whole blocks too).
BlockParts padded(const BlockParts& p, const Geometry& g) {
  thread_local std::vector<uint8_t> zeros;
  thread_local std::vector<uint16_t> scales;
  const size_t ng = size_t(4 * g.blocks);  // 4: groups of 32 per block
  zeros.assign(ng, 0), scales.assign(ng, 0);
  std::memcpy(scales.data(), p.scales, size_t(g.groups) * 2);
  if (p.zeros) std::memcpy(zeros.data(), p.zeros, size_t(g.groups));
  return {p.codes, p.positions, scales.data(), p.zeros ? zeros.data() : nullptr};
}

inline float hsum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// One register half against one token: the 32 activations gathered, multiplied, and
// summed per dword lane.
inline __m256i half_dot(const Half& w, const int8_t* x) {
  const __m256i xa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
  const __m256i xg = _mm256_blend_epi32(_mm256_shuffle_epi8(xa, w.idx), _mm256_shuffle_epi8(xb, w.idx), 0xCC);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w.aw, _mm256_sign_epi8(xg, w.s)), _mm256_set1_epi16(1));
}

// A block's weight scales in the lanes of its merged sums (block, below): lanes (low,
// low, high, high) of each 128-bit lane, whose values are in groups l0, h0 (lane 0) and
// l1, h1 (lane 1). Groups of 64 and 128 broadcast and reorder in the lane (no index
// register: the loop has none to spare, GCC otherwise reloads one from the stack).
template <int Group>
inline __m256 block_scales(const uint16_t* scales) {
  if constexpr (Group == 128) {
    return _mm256_cvtph_ps(_mm_set1_epi16(short(scales[0])));
  } else if constexpr (Group == 64) {  // l0 = l1 = 0, h0 = h1 = 1
    uint32_t two;
    std::memcpy(&two, scales, 4);
    return _mm256_permute_ps(_mm256_cvtph_ps(_mm_set1_epi32(int(two))), 0x50);
  } else {
    constexpr int l0 = group_of<Group>(0, 0), l1 = group_of<Group>(0, 1), h0 = group_of<Group>(1, 0),
                  h1 = group_of<Group>(1, 1);
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_cvtph_ps(_mm_loadu_si64(scales))),
                                    _mm256_setr_epi32(l0, l0, h0, h0, l1, l1, h1, h1));
  }
}

// Block b of a row (both halves, or the first only: Hi false) into every token's
// accumulator. The halves' dword sums are merged before the float conversion: per lane
// the low half's four and the high half's four are packed to 16 bits (each at most 4 *
// 15 * 127) and summed in pairs, giving lanes (low, low, high, high) of one 128-bit lane
// each, whose activation blocks are 0 and 2 (lane 0) and 1 and 3 (lane 1).
template <int NT, int Group, bool Hi, bool Zp>
inline void block(const BlockParts& p, const Consts& c, const int8_t* const (&x)[NT], const float* const (&sc)[NT],
                  int64_t b, __m256 (&acc)[NT]) {
  const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.codes));
  const __m256 d = block_scales<Group>(p.scales);  // at most four scales read
  const Half lo = decode_half<Group, Zp>(p.positions, codes, p.zeros, 0, c);
  Half hi;
  if constexpr (Hi) hi = decode_half<Group, Zp>(p.positions, codes, p.zeros, 1, c);
  for (int j = 0; j < NT; ++j) {
    const __m256i dl = half_dot(lo, x[j] + 128 * b);
    const __m256i dh = Hi ? half_dot(hi, x[j] + 128 * b + 64) : _mm256_setzero_si256();
    const __m256i sum = _mm256_madd_epi16(_mm256_packs_epi32(dl, dh), _mm256_set1_epi16(1));
    acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(d, _mm256_loadu_ps(sc[j] + 8 * b)), acc[j]);
  }
}

// Whether row r's block reads leave the matrix's arrays. A block reads 4 scales and
// 128 / Group zeros: past the end of a row whose last block is partial. There they read
// the next row's, whose values meet only padding activations (zero) and whose scales are
// finite; a row whose reads would leave the arrays (its last) reads zero-padded copies
// instead (padded).
template <int Group>
bool needs_padding(const format::CompressedMatrix& m, const Geometry& g, int64_t r) {
  const int64_t last = g.blocks - 1;
  return r * g.groups + (128 / Group) * last + 4 > int64_t(m.int4.group_scales.size());
}

// R rows from r against NT tokens, side by side: a row of the default model's width is
// four and a half blocks, and alone its accumulator chain and final sum kept the next
// row's loads waiting. One token: three rows (two and four were slower), two tokens: two.
template <int NT, int Group, bool Zp, int R>
inline void rows(const format::CompressedMatrix& m, const uint8_t* positions, const Geometry& g, const Consts& c,
                 const int8_t* const (&x)[NT], const float* const (&sc)[NT], int64_t t0, int64_t r, float* y,
                 int64_t ldy) {
  constexpr int kPer = 128 / Group;
  BlockParts p[R];
  for (int i = 0; i < R; ++i) {
    const int64_t ri = r + i;
    p[i] = {m.int4.codes.data() + ri * g.code_bytes, positions + ri * g.pos_bytes,
            m.int4.group_scales.data() + ri * g.groups, Zp ? m.int4.group_zeros.data() + ri * g.groups : nullptr};
    if (R == 1 && needs_padding<Group>(m, g, ri)) p[i] = padded(p[i], g);
  }
  __m256 acc[R][NT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
  const int64_t last = g.blocks - 1;
  for (int64_t b = 0; b < last; ++b) {
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(p[i].codes + kAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p[i].positions + kAhead / 2), _MM_HINT_T0);
      block<NT, Group, true, Zp>(p[i], c, x, sc, b, acc[i]);
      p[i].codes += 32, p[i].positions += kPosBytes, p[i].scales += kPer;
      if constexpr (Zp) p[i].zeros += kPer;
    }
  }
  for (int i = 0; i < R; ++i) {
    if (g.last_hi) block<NT, Group, true, Zp>(p[i], c, x, sc, last, acc[i]);
    else block<NT, Group, false, Zp>(p[i], c, x, sc, last, acc[i]);
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NT; ++j) y[(t0 + j) * ldy + r + i] = hsum8(acc[i][j]);
}

template <int NT, int Group, bool Zp>
void tile(const format::CompressedMatrix& m, const uint8_t* positions, const Geometry& g, const QuantizedActs& a,
          const Arranged& xs, int64_t t0, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  static const Consts c;
  constexpr int R = NT == 1 ? 3 : NT == 2 ? 2 : 1;
  const int8_t* x[NT];
  const float* sc[NT];
  for (int j = 0; j < NT; ++j)
    x[j] = xs.x.data() + (t0 + j) * a.stride, sc[j] = xs.scales.data() + (t0 + j) * (a.stride / 128) * 8;
  int64_t r = r0;
  if constexpr (R > 1)
    for (; r + R <= r1 && !needs_padding<Group>(m, g, r + R - 1); r += R) rows<NT, Group, Zp, R>(m, positions, g, c, x, sc, t0, r, y, ldy);
  for (; r < r1; ++r) rows<NT, Group, Zp, 1>(m, positions, g, c, x, sc, t0, r, y, ldy);
}

template <int Group, bool Zp>
void run(const format::CompressedMatrix& m, const uint8_t* positions, const QuantizedActs& a, int64_t r0, int64_t r1,
         float* y, int64_t ldy) {
  thread_local Arranged xs;  // grows once: a decode step allocates nothing
  arrange(a, xs);
  const Geometry g = geometry(m);
  int64_t t = 0;
  for (; t + kTile <= a.n_tokens; t += kTile) tile<kTile, Group, Zp>(m, positions, g, a, xs, t, r0, r1, y, ldy);
  switch (a.n_tokens - t) {
    case 3: tile<3, Group, Zp>(m, positions, g, a, xs, t, r0, r1, y, ldy); break;
    case 2: tile<2, Group, Zp>(m, positions, g, a, xs, t, r0, r1, y, ldy); break;
    case 1: tile<1, Group, Zp>(m, positions, g, a, xs, t, r0, r1, y, ldy); break;
    default: break;
  }
}

// Where value v of a row goes in its packed positions: the byte and the bit. Register
// half h of block b (values 64b + 32h ..) takes its 8 bytes to every qword and shifts
// qword q right by 2q (decode_half); its byte j of 128-bit lane L is byte j % 8 of qword
// 2L + j / 8, so that value's field is bits 2q, 2q + 1 of byte j % 8.
std::pair<int64_t, int> packed_place(int64_t v) {
  const int64_t b = v / 64, w = v % 64;
  const int h = int(w / 32), lane = int(w % 32) / 16, j = int(w % 16);
  const int q = 2 * lane + j / 8;
  return {b * kPosBytes + 8 * h + j % 8, 2 * q};
}

}  // namespace

std::vector<uint8_t> nm24_int4_pack_avx2(const format::CompressedMatrix& m) {
  const int64_t out_bytes = geometry(m).pos_bytes, per_v = m.values_per_row();
  const int64_t in_bytes = format::nm_position_bytes_per_row(m.cols, 2, 4);
  std::vector<uint8_t> out(size_t(m.rows * out_bytes), 0);  // past the row's values: 0
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* in = m.nm.positions.data() + r * in_bytes;
    uint8_t* o = out.data() + r * out_bytes;
    for (int64_t v = 0; v < per_v; ++v) {
      const auto [byte, shift] = packed_place(v);
      o[byte] = uint8_t(o[byte] | format::nm_position(in, v, 2) << shift);
    }
  }
  return out;
}

void nm24_int4_avx2(const format::CompressedMatrix& m, const uint8_t* positions, const QuantizedActs& a, int64_t r0,
                    int64_t r1, float* y, int64_t ldy) {
  if (!positions) throw Error("nm24_int4_avx2: the positions come from nm24_int4_pack_avx2");
  const auto by_group = [&]<bool Zp>() {
    switch (m.int4.group_size) {
      case 32: return run<32, Zp>(m, positions, a, r0, r1, y, ldy);
      case 64: return run<64, Zp>(m, positions, a, r0, r1, y, ldy);
      default: return run<128, Zp>(m, positions, a, r0, r1, y, ldy);
    }
  };
  if (m.int4.group_zeros.empty()) by_group.template operator()<false>();
  else by_group.template operator()<true>();
}

}  // namespace upg::kernels

#pragma GCC pop_options
