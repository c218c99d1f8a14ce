#pragma once
// Quantization of one row's surviving weights into the codes a format::SparseRow holds.
// Every quantizer also defines the decoded value (dequantize), computed in float exactly
// as format::decode_row does, so a reference built from it equals the decoded file bit
// for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "upg/format/format.h"

namespace upg::compress {

// --values: int8, prime:K (1 <= K <= 10000), codebook:K (2 <= K <= 65536), int4, int3
// or int2 (the last three grouped: format::grouped_bits).
struct ValueSpec {
  format::Encoding encoding = format::Encoding::Int8;
  int k = 0;  // primes used, or codebook entries (codebook[0] = 0 included)
  int group_size = 128;     // grouped: columns per scale group (32, 64 or 128)
  bool zero_point = false;  // grouped: asymmetric groups with a zero point each
  std::string name() const;  // "int8", "prime:127", "codebook:256", "int4", "int3", "int2"
  int bits() const { return format::grouped_bits(encoding); }  // 4, 3, 2; 0 if not grouped
};
ValueSpec parse_values(std::string_view s, std::string_view origin = "--values");

// absmax: scale from the row's largest |w|. clip: also tries smaller clipping ranges
// (kClipRatios) and keeps the one with the least squared error over the row, so its
// error is never above absmax's. Codebook rows always use absmax (the codebook is fitted
// to the normalised distribution instead).
enum class QuantMethod { Absmax, Clip };
QuantMethod parse_quant_method(std::string_view s, std::string_view origin = "--quant");
const char* quant_method_name(QuantMethod q);
// Dense near 1: with 127 int8 levels rounding error is small, so clipping pays only for
// the few outliers just past the bulk (1-3% less squared error on rows of 256-4096).
inline constexpr float kClipRatios[] = {1.0f,  0.99f, 0.98f, 0.97f, 0.96f, 0.95f, 0.93f, 0.9f,
                                        0.87f, 0.84f, 0.8f,  0.75f, 0.7f,  0.6f,  0.5f};

// Row quantizers: `v` are the kept weights in column order; codes get one code per value
// (int8 value; prime sign|index with the sign in bit 15). Return the row's scale.
float quantize_int8(std::span<const float> v, QuantMethod q, std::vector<int32_t>& codes);
// The int8 code of one weight for a given scale (> 0): round to nearest, within +-127.
int32_t int8_code(float x, float scale);
float quantize_prime(std::span<const float> v, int k, QuantMethod q, std::vector<int32_t>& codes);
// Codebook: scale = the row's absmax; each v / scale goes to the nearest codebook entry
// (lower index on ties). codebook[0] must be 0 and the rest ascending (train_codebook).
float quantize_codebook(std::span<const float> v, std::span<const float> codebook, std::vector<int32_t>& codes);

// A K-entry codebook for row-normalised weights (each in [-1, 1]): codebook[0] = 0, the
// other K-1 entries from 1-D k-means (Lloyd, quantile initialisation, `iters` rounds;
// where there are more than `max_samples` values a seeded random subset is used),
// ascending. Deterministic for a given input and seed.
std::vector<float> train_codebook(std::span<const float> normalized, int k, uint64_t seed, int iters = 8,
                                  size_t max_samples = size_t(1) << 20);

// One group's grid as GPTQ chose it (compress/gptq.h): its step and the code that decodes
// to 0 (0 for the int8 grid, whose codes are signed; for int4 the step is an fp16 value).
struct GridParams {
  float scale = 0;
  int32_t zero = 0;
  bool operator==(const GridParams&) const = default;
};

// ---- grouped values (docs/FORMAT.md 4.3): the grid, one group at a time ----
// A group's weight is step() * (code - zero), code 0 .. 2^bits - 1 (int4, int3, int2; the
// names keep int4, the first). GPTQ quantizes onto the same grid: int4_group once per
// group (from the group's current weights), then int4_code for each weight as its column
// comes up.
struct Int4Group {
  uint16_t scale = 0;  // fp16, as stored
  int zero = format::kInt4DefaultZero;
  int bits = 4;
  float step() const;
  int max_code() const { return (1 << bits) - 1; }
};
// Clip ratios for 4 bits: with 16 levels rounding error is large, so shrinking the range
// pays further down than for int8.
inline constexpr float kInt4ClipRatios[] = {1.0f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f, 0.7f, 0.65f, 0.6f};
// For 3 and 2 bits (8 and 4 levels) the best range is narrower still.
inline constexpr float kLowBitClipRatios[] = {1.0f, 0.95f, 0.9f, 0.85f, 0.8f,  0.75f, 0.7f,
                                              0.65f, 0.6f, 0.55f, 0.5f, 0.45f, 0.4f};
std::span<const float> grouped_clip_ratios(int bits);
// The scale and zero of one group from its values (the kept ones, for N:M). Symmetric
// (zero Z = 2^(bits-1), levels -Z..Z-1): the scale maps the largest |v| to -Z or Z-1,
// whichever fits its sign; with a zero point the range [min(v, 0), max(v, 0)] onto
// 0 .. 2^bits - 1. Clip also tries the ranges shrunk by grouped_clip_ratios and keeps the
// least squared error (the first on ties). Throws upg::Error for a non-finite value.
Int4Group int4_group(std::span<const float> v, bool zero_point, QuantMethod q, int bits = 4);
// The code of w on a group's grid: nearest level (ties to even), clamped to the codes.
int int4_code(float w, const Int4Group& g);
// The weight a code decodes to, as format::decode_row computes it.
float int4_dequantize(int code, const Int4Group& g);
// A group's grid in both forms (the step of a grouped grid is an fp16 value, so they
// convert exactly).
GridParams int4_params(const Int4Group& g);
Int4Group int4_stored(const GridParams& g, int bits = 4);
// int4_code and int4_dequantize on the grid's float form (int4_params), for the loops
// over every weight (the clipping search, GPTQ's sweep), which would otherwise convert the
// fp16 step for each weight. Codes 0 .. max_code.
inline int grid_code(float w, const GridParams& p, int max_code) {
  if (p.scale == 0.0f) return p.zero;
  return int(std::clamp(std::nearbyint(w / p.scale) + float(p.zero), 0.0f, float(max_code)));
}
inline float grid_value(int code, const GridParams& p) { return p.scale * float(code - p.zero); }

// The weight a code decodes to (scale applied), as format::decode_row computes it.
float dequantize(format::Encoding enc, int32_t code, float scale, std::span<const float> codebook);

}  // namespace upg::compress
