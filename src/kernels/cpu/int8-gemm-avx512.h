#pragma once
// The token-major GEMM of the AVX-512 kernels (int8-avx512.cpp), for every layout that
// brings a few rows to signed int8 first: dense int8, the compressed 16-row tiles, and
// GGUF blocks (block-quant-avx512.cpp). Rows are decoded kGemmRows at a time, and every
// vpdpbusd multiplies 4 weights broadcast against 4 columns of 16 tokens (the activations'
// token-major copy, QuantizedActs::qt).
#include <cstdint>

namespace upg::kernels {

struct QuantizedActs;

inline constexpr int kGemmRows = 4;

// Where the decoded rows sit. Row r's 4 weights of quad k are at w + r * row_pitch + k *
// quad_pitch (row-major rows, or a 16-row group's tiles). The rows are cut into
// sub-blocks of `sub` columns (32, the activations' block, or 16): row r's sum over
// sub-block k starts at starts[r * start_row_pitch + k * start_sub_pitch] (-128 * the sum
// of its weights, taking back the + 128 of the activations).
struct GemmRows {
  const int8_t* w;
  int64_t row_pitch, quad_pitch;
  const int32_t* starts;
  int64_t start_row_pitch, start_sub_pitch;
  // GGUF blocks: sub-block k of row r is scaled by scales[r * subs + k] and, with mins,
  // offset by mins[r * subs + k] * act_sums[(g * subs + k) * 16 + j] for token 16g + j
  // (block_sums, token-major). Null for int8 rows, which take one scale per row.
  int sub = 32;
  int64_t subs = 0;
  const float* scales = nullptr;
  const float* mins = nullptr;
  const float* act_sums = nullptr;
};

// y[t * ldy + r0 + i] for the n <= kGemmRows decoded rows i and every token of a (which
// has its token-major copy: a.groups > 0), times row_scales[r0 + i] unless null.
void gemm_rows_avx512(int n, const GemmRows& rows, const QuantizedActs& a, int64_t r0, const float* row_scales,
                      float* y, int64_t ldy);

}  // namespace upg::kernels
