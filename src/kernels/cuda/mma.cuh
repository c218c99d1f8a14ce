#pragma once
// The tensor-core instruction both int8 GEMMs issue (matmul-mma.cu, matmul-staged.cu).
#include <cstdint>

namespace upg::cuda {

// c += A B for one m16n8k32 tile: s8 x s8 -> s32. PTX's fragments: lane = 4 g + t holds
// A rows g (a[0], a[2]) and g + 8 (a[1], a[3]) at columns 4t .. 4t + 3 (a[0], a[1]) and
// 16 + 4t .. (a[2], a[3]); B token g at the same columns (b0, b1); c rows g (c[0], c[1])
// and g + 8 at tokens 2t and 2t + 1.
__device__ inline void mma_s8(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The mma's int32 sums as floats without a conversion instruction, which issues at an
// eighth of the fp32 rate (16 a clock per multiprocessor on sm_90, the CUDA guide's
// throughput table) and was what bounded a group's 32 sums per lane: the accumulators
// start at the bits of 1.5 * 2^23, so a sum s lands in the mantissa of 12582912 + s
// (exact for |s| < 2^22; a 32-column group's is at most 32 * 128 * 127), and one fp32
// subtract removes the offset, exactly: the same float as float(s).
constexpr int kSumBias = 0x4B400000;
__device__ inline float biased_sum(int c) { return __int_as_float(c) - 12582912.0f; }

}  // namespace upg::cuda
