#pragma once
// Random GGUF blocks of every type with sane fp16 scales, for the tests of the CPU and
// CUDA block-quantized kernels.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "upg/core/tensor.h"

namespace upg::kernels {

// Where each type keeps its fp16 scales, so random blocks get sane ones.
struct ScaleAt {
  DType type;
  int at[2];  // byte offsets of d (and dmin); -1: none
};
inline constexpr ScaleAt kTypes[] = {
    {DType::Q4_0, {0, -1}},   {DType::Q4_1, {0, 2}},    {DType::Q5_0, {0, -1}},   {DType::Q5_1, {0, 2}},
    {DType::Q8_0, {0, -1}},   {DType::Q2_K, {80, 82}},  {DType::Q3_K, {108, -1}}, {DType::Q4_K, {0, 2}},
    {DType::Q5_K, {0, 2}},    {DType::Q6_K, {208, -1}}, {DType::IQ4_NL, {0, -1}}, {DType::IQ4_XS, {0, -1}},
};

inline std::vector<std::byte> random_blocks(const ScaleAt& t, int64_t rows, int64_t cols, std::mt19937& rng, bool zero) {
  const int64_t blocks = rows * cols / dtype_block_elems(t.type), bytes = dtype_block_bytes(t.type);
  std::vector<std::byte> b(size_t(blocks * bytes));
  if (zero) return b;
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (auto& x : b) x = std::byte(byte(rng));
  for (int64_t k = 0; k < blocks; ++k)
    for (int at : t.at)
      if (at >= 0) {
        const uint16_t h = fp32_to_fp16(scale(rng));
        std::memcpy(b.data() + k * bytes + at, &h, 2);
      }
  return b;
}

}  // namespace upg::kernels
