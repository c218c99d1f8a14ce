#pragma once
// Random GGUF blocks of every type with sane fp16 scales, for the tests of the CPU and
// CUDA block-quantized kernels, and random activations for them.
#include <cstddef>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/int8-kernels.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/cpu.h"
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

// Normal activations with one outlier, as real activations have.
inline std::vector<float> random_x(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = g(rng);
  x[size_t(n / 3)] = 30.0f;
  return x;
}

// x quantized as the int8 kernels see it, and those int8 activations dequantized
// [n_tokens, cols]: the input of a plain reference product.
inline std::vector<float> quantized_x(const std::vector<float>& x, int64_t n_tokens, int64_t cols, QuantizedActs& a) {
  quantize_acts(x.data(), n_tokens, cols, a);
  std::vector<float> xq(size_t(n_tokens * cols));
  for (int64_t tk = 0; tk < n_tokens; ++tk)
    for (int64_t c = 0; c < cols; ++c)
      xq[size_t(tk * cols + c)] = a.block_scales(tk)[c / kActBlock] * float(a.signed_row(tk)[c]);
  return xq;
}

// y [n_tokens, rows] (a kernel's output) against the double-precision product of w [rows,
// cols] and xq: what is left is summation order and fp16 scales, 2e-3 of sum |w x|, plus
// extra(r, c) * |x| for a weight's own known rounding.
template <class Extra>
void expect_product(const std::vector<float>& y, const std::vector<float>& w, const std::vector<float>& xq,
                    int64_t n_tokens, int64_t rows, int64_t cols, Extra extra) {
  for (int64_t tk = 0; tk < n_tokens; ++tk)
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0, bound = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double x = xq[size_t(tk * cols + c)];
        ref += double(w[size_t(r * cols + c)]) * x;
        bound += (std::fabs(double(w[size_t(r * cols + c)])) + extra(r, c)) * std::fabs(x);
      }
      ASSERT_NEAR(y[size_t(tk * rows + r)], ref, 2e-3 * bound + 1e-6) << "token " << tk << " row " << r;
    }
}

// w through a backend that packs it on first use and one that prepare()d it first (the
// two must agree exactly), and through the reference kernels: the packed output and the
// reference one, [n_tokens, w.rows] each.
inline std::pair<std::vector<float>, std::vector<float>> packed_and_reference(const LinearWeight& w,
                                                                              const std::vector<float>& x,
                                                                              int64_t n_tokens) {
  std::vector<float> lazy(size_t(n_tokens * w.rows)), packed(lazy.size()), ref(lazy.size());
  make_cpu_backend(2)->matmul(w, x.data(), n_tokens, lazy.data());
  auto prepared = make_cpu_backend(2);
  prepared->prepare(w);
  prepared->matmul(w, x.data(), n_tokens, packed.data());
  EXPECT_EQ(lazy, packed);
  make_cpu_backend(2, CpuKernels::Reference)->matmul(w, x.data(), n_tokens, ref.data());
  return {packed, ref};
}

}  // namespace upg::kernels
