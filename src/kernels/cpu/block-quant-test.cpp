// The GGUF block-quantized kernels on every target this CPU runs, for every type, against
// a plain double-precision product of the dequantized weights (format::dequantize_ggml,
// itself checked against gguf-py in the io tests) with the dequantized int8 activations
// the kernels see: what is left is summation order and, for the K and XS types, fp16
// rounding of the sub-block scales (2^-11 relative), so the tolerance is 2e-3 of sum |w x|.
#include "kernels/cpu/block-quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "upg/format/ggml-blocks.h"
#include "kernels/cpu/for-each-target.h"
#include "kernels/cpu/int8-kernels.h"
#include "upg/kernels/backend.h"
#include "upg/core/error.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/test-random-blocks.h"

namespace upg::kernels {
namespace {

void check_type(const ScaleAt& t, int64_t rows, int64_t cols, int64_t n_tokens, bool zero, std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message() << dtype_name(t.type) << " " << rows << "x" << cols << " tokens " << n_tokens
                                    << (zero ? " all-zero" : ""));
  const std::vector<std::byte> blocks = random_blocks(t, rows, cols, rng, zero);
  std::vector<float> w(size_t(rows * cols));
  format::dequantize_ggml(t.type, reinterpret_cast<const uint8_t*>(blocks.data()), w.data(), rows * cols);
  const std::vector<float> x = random_x(rng, n_tokens * cols);
  QuantizedActs a;
  const std::vector<float> xq = quantized_x(x, n_tokens, cols, a);

  const BlockQuantRows m = pack_block_quant(t.type, blocks.data(), rows, cols);
  std::vector<float> sums;
  block_sums(a, m.sub, m.subs, sums);
  testing::for_each_target([&](const std::string&) {
    std::vector<float> y(size_t(n_tokens * rows) + 1, 777.0f);
    const int64_t mid = rows / 3;  // two calls: a kernel writing outside its rows shows
    int8_kernels().block_quant(m, a, sums.data(), 0, mid, y.data(), rows);
    int8_kernels().block_quant(m, a, sums.data(), mid, rows, y.data(), rows);
    ASSERT_EQ(y.back(), 777.0f) << "wrote past the output";
    expect_product(y, w, xq, n_tokens, rows, cols, [](int64_t, int64_t) { return 0.0; });
  });
}

TEST(BlockQuant, EveryTypeOnEveryTarget) {
  std::mt19937 rng(7);
  for (const ScaleAt& t : kTypes) {
    const int64_t be = dtype_block_elems(t.type);
    // Odd row counts; 32-element types also with 96 columns (not a whole 64-column
    // vector: padding) and 576 (the default model's hidden size). From 16 tokens on, the
    // prefill GEMM where a target has one: 17 and 35 leave a group mostly padding, and
    // 7 or 13 rows split in two calls are no whole tiles of 4.
    const std::vector<int64_t> widths = be == 32 ? std::vector<int64_t>{32, 96, 576} : std::vector<int64_t>{256, 768};
    for (int64_t cols : widths)
      for (int64_t n_tokens : {1, 3, 9, 17}) check_type(t, 7, cols, n_tokens, false, rng);
    check_type(t, 13, widths.back(), 35, false, rng);
    check_type(t, 17, be == 32 ? 64 : 256, 2, true, rng);
    check_type(t, 17, be == 32 ? 64 : 256, 16, true, rng);
  }
}

TEST(BlockQuant, FormKeepsAboutTheFileSize) {
  std::mt19937 rng(3);
  for (DType type : {DType::Q4_0, DType::Q4_1, DType::IQ4_NL, DType::IQ4_XS, DType::Q4_K, DType::Q5_0, DType::Q5_1,
                     DType::Q5_K, DType::Q6_K, DType::Q3_K, DType::Q2_K}) {
    const ScaleAt* t = nullptr;
    for (const ScaleAt& s : kTypes)
      if (s.type == type) t = &s;
    const int64_t rows = 64, cols = 1024;
    const auto blocks = random_blocks(*t, rows, cols, rng, false);
    const BlockQuantRows m = pack_block_quant(type, blocks.data(), rows, cols);
    // The K types' 6-bit sub-block scales (and mins) become fp16: Q4_K 5 bits a weight
    // against 4.5, Q5_K 6 against 5.5, Q6_K (16-column sub-blocks) 7 against 6.5625;
    // IQ4_XS's 6-bit scales likewise: 4.5 against 4.25; Q3_K 4 against 3.44, and Q2_K,
    // whose 4-bit scale and min per 16 columns become two fp16, 4 against 2.63. Codes of
    // 2, 3, 5 and 6 bits are bit planes, so Q5_0 and Q5_1 are the file's size.
    const double limit = type == DType::Q4_K     ? 1.12
                         : type == DType::Q5_K   ? 1.10
                         : type == DType::Q6_K   ? 1.07
                         : type == DType::IQ4_XS ? 1.06
                         : type == DType::Q3_K   ? 1.17
                         : type == DType::Q2_K   ? 1.53
                                                 : 1.0;
    EXPECT_LE(double(m.bytes()), limit * double(blocks.size())) << dtype_name(type);
  }
}

// Through the backend: a weight matmul packs on first use and one prepare() packed give
// the same output (bias added), the reference kernels agree within the activation
// rounding, and embed dequantizes a row exactly as the float path does.
TEST(BlockQuant, BackendMatmulAndEmbed) {
  std::mt19937 rng(11);
  const ScaleAt& t = kTypes[7];  // Q4_K
  ASSERT_EQ(t.type, DType::Q4_K);
  const int64_t rows = 9, cols = 512, n_tokens = 3;
  const auto blocks = random_blocks(t, rows, cols, rng, false);
  std::vector<float> bias(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) bias[size_t(r)] = 0.5f * float(r);
  LinearWeight w;
  w.dtype = t.type;
  w.data = blocks.data();
  w.rows = rows;
  w.cols = cols;
  w.bias = bias.data();
  w.name = "w";
  const std::vector<float> x = random_x(rng, n_tokens * cols);
  const auto [packed, ref] = packed_and_reference(w, x, n_tokens);
  auto fast = make_cpu_backend(2);
  // The reference multiplies fp32 activations: the difference is their int8 rounding,
  // bounded by a fraction of sum |w x| (the outlier of random_x coarsens its block).
  std::vector<float> dense(static_cast<size_t>(rows * cols));
  format::dequantize_ggml(t.type, reinterpret_cast<const uint8_t*>(blocks.data()), dense.data(), rows * cols);
  for (int64_t tk = 0; tk < n_tokens; ++tk)
    for (int64_t r = 0; r < rows; ++r) {
      double bound = 0;
      for (int64_t c = 0; c < cols; ++c) bound += std::fabs(double(dense[size_t(r * cols + c)]) * x[size_t(tk * cols + c)]);
      const size_t i = size_t(tk * rows + r);
      EXPECT_NEAR(packed[i], ref[i], 0.01 * bound) << "token " << tk << " row " << r;
    }

  std::vector<float> row(static_cast<size_t>(cols)), want(static_cast<size_t>(cols));
  const int32_t token = 4;
  fast->embed(w, std::span<const int32_t>(&token, 1), row.data());
  format::dequantize_ggml(t.type, reinterpret_cast<const uint8_t*>(blocks.data()) + 4 * (cols / 256) * 144, want.data(),
                          cols);
  EXPECT_EQ(row, want);
}

TEST(BlockQuant, NonFiniteScaleIsAnError) {
  std::vector<std::byte> b(34 * 2);
  const uint16_t nan = 0x7E00;
  std::memcpy(b.data() + 34, &nan, 2);  // second row's block
  try {
    pack_block_quant(DType::Q8_0, b.data(), 2, 32);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "row 1: a NaN or infinite block scale");
  }
  EXPECT_THROW(pack_block_quant(DType::Q8_0, b.data(), 1, 48), Error);  // not whole blocks
  EXPECT_THROW(pack_block_quant(DType::F16, b.data(), 1, 32), Error);
}

}  // namespace
}  // namespace upg::kernels
