#pragma once
// GGUF block-quantized weights on the CPU: the execution form (upg/kernels/block-quant-form.h)
// multiplied with the int8 activations every other int8 kernel uses, never expanded to
// floats:
//   y = sum_s d[s] * a_scale(s) * sum_{c in s} code[c] * a[c]  +  sum_s m[s] * a_sum(s)
// where a are the signed int8 activations, a_scale their block scale and a_sum(s) the
// scaled sum of a over sub-block s. The integer sum is one vpdpbusd per 64 columns with
// the codes as its unsigned operand; the second sum is 1/16 or 1/32 of the work.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "upg/core/tensor.h"
#include "upg/kernels/block-quant-form.h"

namespace upg::kernels {

struct QuantizedActs;

// Per token, the activations' part of the second sum: sums[t * subs + s] = block scale *
// (sum of the signed activations over sub-block s), for subs of `sub` columns. Computed
// once per call, before the rows are split over threads; `sums` only grows.
void block_sums(const QuantizedActs& a, int sub, int64_t subs, std::vector<float>& sums);

// y[t * ldy + r] for rows [r0, r1), every token of a, with sums from block_sums: the
// plain loop every SIMD kernel is tested against.
void block_quant_scalar(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1,
                        float* y, int64_t ldy);
void block_quant_avx2(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1,
                      float* y, int64_t ldy);
void block_quant_avx512(const BlockQuantRows& m, const QuantizedActs& a, const float* sums, int64_t r0, int64_t r1,
                        float* y, int64_t ldy);

}  // namespace upg::kernels
