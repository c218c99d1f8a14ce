#pragma once
// The int8 kernels: dense int8, N:M and MdCSR (repacked as bitmap windows) matrix
// products over int8 activations, with one implementation per SIMD target (scalar,
// AVX2, AVX-512 with VNNI/VBMI/VBMI2) chosen once at start.
//
// Why int8 activations: decode streams every weight once per token, so a kernel that
// converts int8 weights to fp32 pays 4 vector ops per 16 weights, while VNNI's vpdpbusd
// multiplies 64 int8 pairs in one. Activations get one scale per 32 columns, so one
// outlier only coarsens its own block. Measured on the default model (dense int8
// weights, 1024 KJV tokens; reference kernels with fp32 activations: 4.1750):
// perplexity 4.1814 with blocks of 32, 4.2048 with 64, 4.2564 with 128. A 64-byte
// vpdpbusd sum spans two blocks (lanes 0-7 and 8-15), so the cost is one scale vector
// load instead of a broadcast.
//
// Why intrinsics and not Highway here: Debian's Highway 1.0.3 has no int8 dot product
// (vpdpbusd) and no byte permutes across a whole register (vpermb / vpermi2b), which are
// the two instructions these kernels are built on. The float kernels stay on Highway.
#include <cstdint>
#include <string>
#include <vector>

#include "upg/core/aligned-vector.h"
#include "upg/format/format.h"
#include "upg/kernels/dense-forms.h"

#include "upg/core/thread-pool.h"

namespace upg::kernels {

inline constexpr int64_t kActBlock = 32;   // columns per activation scale
inline constexpr int64_t kActAlign = 128;  // row stride multiple: N:M reads 128-column windows
inline constexpr int64_t kGemmTokens = 16;  // tokens from which the token-major (GEMM) layout is built

// Which kernels a call's tokens run through. The decode kernels (tiles over a few
// tokens) and the prefill ones (the token-major GEMM) sum in different orders, so a
// token's result depends on the class it runs in; each class on its own gives a token
// the same result whatever else the call holds. ByCount picks by the call's size (the
// GEMM from kGemmTokens tokens): fastest, but a token's numbers then depend on its batch.
// Decode and Prefill fix the class (batch invariance: Backend::set_decode_rows).
enum class TokenClass : uint8_t { ByCount, Decode, Prefill };

// x quantized for the int8 kernels. A value is stored with a +128 offset (u8, the
// unsigned operand of vpdpbusd); x ~= scale * (q - 128). Padding columns hold 128 (zero)
// and padding blocks a zero scale, so kernels may read whole windows past `cols`.
struct QuantizedActs {
  int64_t n_tokens = 0, cols = 0;
  int64_t stride = 0;          // cols rounded up to kActAlign
  std::vector<uint8_t> q;      // [n_tokens, stride]
  std::vector<float> scales;   // [n_tokens, stride / kActBlock]: max |x| / 127 per block
  // Block scales laid out as the 16 int32 lanes of one vpdpbusd sum fall, so a kernel
  // scales a sum with one vector load. Per 64-column vector (dense): lanes 0-7 take the
  // scale of its first block, 8-15 of its second [n_tokens, stride / 64, 16].
  std::vector<float> lane_scales;
  // The same activations signed (q - 128) [n_tokens, stride], and -128 * (sum of each
  // 32-column block's signed activations) [n_tokens, stride / 32]: the bitmap kernels
  // multiply them by weights stored + 128 (BitmapRows16), where the offset to take back
  // depends on the activations only, so it costs nothing per row.
  std::vector<int8_t> qs;
  std::vector<int32_t> block_offsets;
  // Prefill (token_major, see quantize_acts): the activations of each group of 16 tokens
  // interleaved by 4 columns, qt [groups, stride / 4, 16 tokens x 4 bytes], and their
  // block scales [groups, stride / 32, 16 tokens], padding tokens zero (q 128, scale 0).
  // One 64-byte load then feeds a vpdpbusd against 4 weights broadcast: 16 tokens at
  // once, with one float conversion per 32 columns instead of per 64-column vector
  // and token (int8-avx512.cpp, gemm).
  int64_t groups = 0;
  TokenClass token_class = TokenClass::ByCount;  // as quantize_acts was asked
  std::vector<uint8_t> qt;
  std::vector<float> scales_t;
  const uint8_t* row(int64_t t) const { return q.data() + t * stride; }
  const int8_t* signed_row(int64_t t) const { return qs.data() + t * stride; }
  const int32_t* block_offset(int64_t t) const { return block_offsets.data() + t * (stride / kActBlock); }
  const float* block_scales(int64_t t) const { return scales.data() + t * (stride / kActBlock); }
  const float* vector_lane_scales(int64_t t) const { return lane_scales.data() + t * (stride / 4); }
};
struct BlockQuantRows;
// Symmetric round-to-nearest-even per block. Buffers only grow, so a decode loop reuses
// them. With a pool, tokens are split over its threads.
// The token-major copy (groups > 0, the prefill kernels) is built from kGemmTokens tokens
// with TokenClass::ByCount, always with Prefill, never with Decode.
void quantize_acts(const float* x, int64_t n_tokens, int64_t cols, QuantizedActs& out, ThreadPool* pool = nullptr,
                   TokenClass token_class = TokenClass::ByCount);

// A dense int8 weight ("W.qweight" + "W.scales"), used in place: W[r, c] = scales[r] * w[r * cols + c].
struct DenseI8 {
  const int8_t* w = nullptr;
  const float* scales = nullptr;
  int64_t rows = 0, cols = 0;
};

// An MdCSR matrix repacked at load for the scalar target (AVX-512 runs BitmapRows16, AVX2
// dense rows; docs/KERNELS.md): per row and 64-column window, a bit mask of the kept
// columns, and the kept values in column order. The serial delta decoding of MdCSR makes a kernel compute-bound; a mask tells
// where a window's values go without it. Padding entries and zero values are dropped.
// Int8 values are stored + 128 (u8), as BitmapRows16 stores them. Prime and codebook
// values become fp16 scaled by the row's largest magnitude (their range, up to 104729,
// does not fit int8; fp16 keeps a relative error under 2^-11, far below the int8
// activation rounding of other layers).
struct BitmapMatrix {
  int64_t rows = 0, cols = 0, windows = 0;  // windows = ceil(cols / 64)
  bool f16 = false;                         // values16 (prime / codebook) instead of values
  std::vector<uint64_t> masks;              // [rows, windows]; bit i: column 64 * window + i kept
  std::vector<uint64_t> row_start;          // [rows + 1]: index of each row's first value
  std::vector<uint8_t> values;              // int8: kept values + 128, then 64 bytes of padding
  std::vector<uint16_t> values16;           // f16: kept values / row max, then 32 of padding
  std::vector<float> scales;                // [rows]
  size_t bytes() const;                     // bytes the kernel streams
};
// Throws upg::Error for an N:M matrix.
BitmapMatrix pack_bitmap(const format::CompressedMatrix& m);

// A compressed matrix (MdCSR or N:M) repacked at load for targets with an expand
// instruction: bitmap tiles
// of 16 rows, laid out as one dot-product operand, 64 bytes each. Against BitmapMatrix's
// row-major windows, lane i of every sum is row i, so the activations a tile needs are
// one 4-byte broadcast, the block scale is applied once per 32 columns instead of per
// vector, and 16 results leave in one store with no horizontal sum. Per 64 weights the
// int8 kernel runs one expand and one vpdpbusd per token, so it streams memory instead
// of computing; the row-major form took four more vector instructions per 64 weights,
// which made it bound by computation, slower than dense int8 at 50% (docs/KERNELS.md).
//
// int8 values: a tile is 16 rows x 4 columns (byte 4i + k: row i, column 4q + k) for
// vpdpbusd; values are stored + 128 and expanded over 128 (weight 0), as in
// BitmapMatrix. Prime and codebook values (`wide`): int16 scaled by the row's largest
// magnitude (relative error 2^-16 of it, against the int8 rounding of the activations),
// two tiles of 16 rows x 2 columns per quad for vpdpwssd against activation pairs
// widened to int16 as the kernel reads them.
struct BitmapRows16 {
  int64_t rows = 0, cols = 0;
  int64_t groups = 0;  // ceil(rows / 16)
  int64_t quads = 0;   // 4-column steps per row, padded to whole 32-column blocks
  bool wide = false;   // int16 values (prime, codebook) instead of int8
  // [groups, quads]. int8: bit 4i + k: row i keeps column 4q + k. wide: bit 32h + 2i + k:
  // row i keeps column 4q + 2h + k.
  std::vector<uint64_t> masks;
  std::vector<uint64_t> group_start;  // [groups + 1]: index of each group's first value
  std::vector<uint8_t> values;        // int8: kept values + 128 in mask order, then 64 bytes of padding
  std::vector<int16_t> values16;      // wide: kept values in mask order, then 32 of padding
  std::vector<float> scales;          // [groups * 16]; padding rows 0
  size_t bytes() const {
    return masks.size() * 8 + size_t(group_start.back()) * (wide ? 2 : 1) + scales.size() * 4;
  }
};
// Throws upg::Error for a column past cols or two values on one column of a row.
BitmapRows16 pack_bitmap_rows16(const format::CompressedMatrix& m);

// A 2:4 int8 matrix repacked at load for AVX2, which has no byte expand: instead of
// expanding the values, the kernel gathers the activations each value multiplies with
// one in-lane byte shuffle (vpshufb) per 32 columns, and the shuffle's control comes from
// the group's pair code in a few instructions. Per row and 64-column window:
// - 32 signed values in register order: in 128-bit lane L, dwords 0 and 2 hold columns
//   16L + 0..7 and 16L + 8..15 (activation block 0), dwords 1 and 3 columns 32 + 16L + 0..7
//   and 32 + 16L + 8..15 (block 1); each dword is two groups' two kept values, each group
//   one 16-bit half of it, the value of the lower column first. Dword parity is then the
//   block, so one broadcast of the window's two block scales scales all eight sums.
// - 6 bytes of pair codes: which 2 of its 4 columns group g keeps (one of 6 pairs,
//   nm24_pair_code) in bits 3g..3g+2. The file's layout spends 2 bits on each value's
//   position, 4 on a group; 3 bits name the pair, so a row streams 38 bytes per 64
//   columns instead of 40 (the kernel is bound by memory on AVX2, docs/KERNELS.md).
// Groups that keep fewer than 2 store zero values in free columns.
//
// Rows are interleaved by 4 ([rows / 4, windows, 4 rows, ...], rows padded with zeros),
// so the kernel's 4 rows at a time read one stream instead of four (four streams per
// thread read slower than one; docs/KERNELS.md, "AVX2").
constexpr int kNm24CodeBytes = 6;
struct Nm24Rows {
  int64_t rows = 0, cols = 0, windows = 0;  // windows = ceil(cols / 64)
  std::vector<int8_t> values;               // [ceil(rows / 4), windows, 4, 32]
  std::vector<uint8_t> codes;               // [ceil(rows / 4), windows, 4, 6], then 2 bytes of padding
  std::vector<float> scales;                // [rows]
  size_t bytes() const { return values.size() + codes.size() + scales.size() * 4; }
  // Index of row r's window w: times 32 in values, times kNm24CodeBytes in codes.
  size_t at(int64_t r, int64_t w) const { return size_t(((r / 4) * windows + w) * 4 + r % 4); }
};
// The pair code of columns p0 < p1 of a group of 4: 0 (0, 1), 1 (0, 2), 2 (0, 3),
// 3 (1, 2), 4 (1, 3), 5 (2, 3).
int nm24_pair_code(int p0, int p1);
// Throws upg::Error unless m is a 2:4 int8 matrix, and for a group that names one
// position twice (format::validate rejects such a file first).
Nm24Rows pack_nm24(const format::CompressedMatrix& m);
// Where Nm24Rows puts window value k (k / 2 its group, k % 2 which of the group's two,
// the lower column first): its register byte.
int nm24_register_byte(int k);

// A 2:4 int8 matrix repacked at load for AVX-512, where decode streams memory and bytes
// are time: 16 rows side by side (lane i of every sum is row i, as in BitmapRows16), each
// group's two values with a 3-bit pair code (nm24_pair_code) instead of a 4-bit mask, and
// codes and values in one stream. Per 16 rows and 32 columns one 304-byte record:
// - bytes [0, 48): the codes, 6 bytes for each pair of rows (2j, 2j + 1): row i's code of
//   group h (0, 1) of octet v (8 columns) at bit 48 (i / 2) + 12 v + 6 (i % 2) + 3 h, so
//   that one vpermb spreads a record's codes to the qwords vpmultishiftqb reads;
// - bytes [48, 304): 4 value vectors, octet v at 48 + 64v: byte 4i + 2h + k holds row i's
//   k-th value of group h (the lower column first), signed.
// A row then streams 19 bytes per 32 columns against 20 in the tiles and 32 dense (a
// ratio of 1.68 against 1.60). The kernel gathers each row's activations from an 8-byte
// broadcast with one in-lane vpshufb whose control it derives from the codes, instead
// of expanding weights, so it needs no mask register and no serial value pointer; one
// stream per thread also kept closer to dense int8's bandwidth than separate mask and
// value streams (docs/KERNELS.md). Groups that keep fewer than 2 hold zero values, rows
// past `rows` zero values and scale 0, columns past `cols` zero values.
constexpr int64_t kNm24CodeBlockBytes = 48;                           // codes of one record
constexpr int64_t kNm24RecordBytes = kNm24CodeBlockBytes + 4 * 64;  // one record
struct Nm24Rows16 {
  int64_t rows = 0, cols = 0;
  int64_t groups = 0;           // ceil(rows / 16)
  int64_t blocks = 0;           // ceil(cols / 32)
  std::vector<uint8_t> data;    // [groups, blocks, kNm24RecordBytes], then 64 bytes of padding
  std::vector<float> scales;    // [groups * 16]; padding rows 0
  size_t bytes() const { return data.size() + scales.size() * 4; }
  const uint8_t* record(int64_t g, int64_t b) const { return data.data() + (g * blocks + b) * kNm24RecordBytes; }
};
// Throws upg::Error unless m is a 2:4 int8 matrix, and for a group that names one
// position twice.
Nm24Rows16 pack_nm24_rows16(const format::CompressedMatrix& m);

// A dense int8 matrix repacked at load for AVX2: rows interleaved by 4 in 32-column
// blocks, [ceil(rows / 4), blocks, 4 rows, 32], zero padded, so the kernel's 4 rows at a
// time read one stream instead of four (as Nm24Rows). Costs a copy of the matrix.
struct DenseRows4 {
  int64_t rows = 0, cols = 0, blocks = 0;  // blocks = ceil(cols / 32)
  std::vector<int8_t> w;
  std::vector<float> scales;  // [rows]
  size_t offset(int64_t r, int64_t b) const { return size_t((((r / 4) * blocks + b) * 4 + r % 4) * 32); }
  const int8_t* block(int64_t r, int64_t b) const { return w.data() + offset(r, b); }
};
DenseRows4 pack_dense_rows4(const DenseI8& m);
// An int8 compressed matrix (MdCSR int8 or N:M) decoded to its dense int8 codes, with the
// same row scales. Throws upg::Error for prime or codebook values.
DenseRows4 pack_dense_rows4(const format::CompressedMatrix& m);

// Prime and codebook values run decoded to dense fp16 (upg/kernels/dense-forms.h) on
// targets that run them through the float matmul (AVX2).

// One target's kernels. Each computes rows [r0, r1) for every token:
// y[t * ldy + r] = sum_c W[r, c] * x[t, c] (no bias; the caller adds it).
struct Int8Kernels {
  const char* name;  // "avx512-vnni", "avx2", "scalar"
  void (*dense)(const DenseI8& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy);
  // Any N:M; a target may hand shapes it has no fast path for to the scalar kernel.
  void (*nm)(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y,
             int64_t ldy);
  void (*bitmap)(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy);
  // f16 values, fp32 activations x [n_tokens, m.cols].
  void (*bitmap_f16)(const BitmapMatrix& m, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                     int64_t ldy);
  // Any compressed matrix in 16-row bitmap tiles, row groups [g0, g1), any number of
  // tokens; null on targets without one (they run bitmap, bitmap_f16 and nm).
  void (*bitmap_rows16)(const BitmapRows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y,
                        int64_t ldy);
  // 2:4 int8 in Nm24Rows, rows [r0, r1); null on targets that run 2:4 otherwise.
  void (*nm24)(const Nm24Rows& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy);
  // Dense int8 repacked into DenseRows4; null on targets that run dense int8 in place.
  void (*dense_rows4)(const DenseRows4& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy);
  // 2:4 int8 in Nm24Rows16, row groups [g0, g1), any number of tokens; null on targets
  // that run 2:4 otherwise.
  void (*nm24_rows16)(const Nm24Rows16& m, const QuantizedActs& a, int64_t g0, int64_t g1, float* y, int64_t ldy);
  // GGUF block-quantized weights (block-quant.h), rows [r0, r1), any number of tokens;
  // sums from block_sums.
  void (*block_quant)(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1,
                      float* y, int64_t ldy);
  // 2:4 int4 (docs/FORMAT.md 4.3) from the file's codes, scales and zeros, rows [r0, r1),
  // any number of tokens; null on targets that run it expanded to dense int4
  // (int4_block_form). `positions`: what nm24_int4_pack made of m's, or null where the
  // target has no pack and reads the file's.
  void (*nm24_int4)(const format::CompressedMatrix& m, const uint8_t* positions, const QuantizedActs& a, int64_t r0,
                    int64_t r1, float* y, int64_t ldy);
  // The target's own order of m's 2-bit positions (as many bytes as the file's, padded to
  // whole blocks), built once at load; null where nm24_int4 reads the file's.
  std::vector<uint8_t> (*nm24_int4_pack)(const format::CompressedMatrix& m);
};
void nm24_int4_avx512(const format::CompressedMatrix& m, const uint8_t* positions, const QuantizedActs& a, int64_t r0,
                      int64_t r1, float* y, int64_t ldy);
void nm24_int4_avx2(const format::CompressedMatrix& m, const uint8_t* positions, const QuantizedActs& a, int64_t r0,
                    int64_t r1, float* y, int64_t ldy);
std::vector<uint8_t> nm24_int4_pack_avx2(const format::CompressedMatrix& m);

extern const Int8Kernels kInt8Scalar;
// The scalar kernels the SIMD targets fall back on for shapes they do not vectorize.
void nm_scalar(const format::CompressedMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y,
               int64_t ldy);
void bitmap_scalar(const BitmapMatrix& m, const QuantizedActs& a, int64_t r0, int64_t r1, float* y, int64_t ldy);
void bitmap_f16_scalar(const BitmapMatrix& m, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                       int64_t ldy);
extern const Int8Kernels kInt8Avx2;
extern const Int8Kernels kInt8Avx512;

// The table in use: chosen once from the CPU's features, and switched by force_target
// (kernels.h) so tests run every target: AVX3* -> avx512-vnni (when the CPU has VNNI,
// VBMI and VBMI2), AVX2 -> avx2, anything else -> scalar.
const Int8Kernels& int8_kernels();
void select_int8_kernels(const std::string& hwy_target_name);  // "" = best for this CPU

}  // namespace upg::kernels
