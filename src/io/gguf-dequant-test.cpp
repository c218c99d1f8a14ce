#include "io/gguf-dequant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "io/gguf-reader.h"
#include "io/gguf-test-util.h"

namespace upg::io {
namespace {

// quant-types.gguf and dequant-expected.gguf come from scripts/fixtures/make-gguf-fixtures.py:
// gguf-py wrote the tensors and computed the expected values with its own dequantize().
TEST(GgufDequant, MatchesGgufPyForEveryType) {
  GgufFile q = GgufFile::open(gguf_test::fixture("quant-types.gguf"));
  GgufFile e = GgufFile::open(gguf_test::fixture("dequant-expected.gguf"));
  std::vector<std::string> seen;
  for (const GgufTensorInfo& t : q.tensors()) {
    SCOPED_TRACE(t.name);
    const GgufTensorInfo* want = e.find_tensor(t.name);
    ASSERT_NE(want, nullptr);
    ASSERT_EQ(want->dtype, DType::F32);
    ASSERT_EQ(want->numel(), t.numel());
    const float* w = reinterpret_cast<const float*>(want->data);
    std::vector<float> got(size_t(t.numel()));
    dequantize_row(t.dtype, t.data, got.data(), t.numel());
    int bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (std::abs(got[i] - w[i]) > 1e-6f * std::max(1.0f, std::abs(w[i])) && bad++ < 5)
        ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << w[i];
    // Row-wise conversion (threaded path included) gives the same values.
    std::vector<float> rows(got.size());
    convert_rows(t.dtype, t.data, t.numel() / t.ne[0], t.ne[0], DType::F32, reinterpret_cast<std::byte*>(rows.data()));
    EXPECT_EQ(rows, got);
    seen.push_back(dtype_name(t.dtype));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K",
                                            "Q5_K", "Q6_K", "Q2_K", "Q3_K", "IQ4_XS", "IQ4_NL"}));
}

TEST(GgufDequant, ConvertsToHalfTypesAndAppliesRowMap) {
  GgufFile q = GgufFile::open(gguf_test::fixture("quant-types.gguf"));
  const GgufTensorInfo& t = *q.find_tensor("q4_1");
  const int64_t rows = t.ne[1], cols = t.ne[0];
  std::vector<float> f(size_t(rows * cols));
  dequantize_row(t.dtype, t.data, f.data(), rows * cols);
  std::vector<int64_t> map(static_cast<size_t>(rows));
  std::iota(map.rbegin(), map.rend(), 0);  // reversed rows
  for (DType out : {DType::F16, DType::BF16}) {
    std::vector<uint16_t> h(f.size());
    convert_rows(t.dtype, t.data, rows, cols, out, reinterpret_cast<std::byte*>(h.data()), map);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float x = f[size_t((rows - 1 - r) * cols + c)];
        uint16_t want = out == DType::F16 ? fp32_to_fp16(x) : fp32_to_bf16(x);
        ASSERT_EQ(h[size_t(r * cols + c)], want) << dtype_name(out) << " row " << r << " col " << c;
      }
  }
}

TEST(GgufDequant, LargeTensorThreadedMatchesSingleRow) {
  // Enough elements to split over threads; each row is checked against dequantize_row.
  const int64_t rows = 300, cols = 1024;
  std::vector<std::byte> src(size_t(rows * cols / 32 * 34));
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::byte((i * 2654435761u) >> 7);
  for (size_t b = 0; b < src.size(); b += 34) {  // sane fp16 scales
    src[b] = std::byte(0x00);
    src[b + 1] = std::byte(0x2C);
  }
  std::vector<float> all(static_cast<size_t>(rows * cols)), one(static_cast<size_t>(cols));
  convert_rows(DType::Q8_0, src.data(), rows, cols, DType::F32, reinterpret_cast<std::byte*>(all.data()));
  for (int64_t r = 0; r < rows; r += 37) {
    dequantize_row(DType::Q8_0, src.data() + size_t(r * cols / 32 * 34), one.data(), cols);
    ASSERT_EQ(0, std::memcmp(one.data(), all.data() + r * cols, size_t(cols) * 4)) << "row " << r;
  }
}

TEST(GgufDequant, RejectsBadRequests) {
  std::vector<std::byte> src(34);
  std::vector<float> dst(32);
  gguf_test::expect_error([&] { dequantize_row(DType::Q8_0, src.data(), dst.data(), 31); },
                          {"31 elements", "Q8_0 block size 32"});
  gguf_test::expect_error(
      [&] { convert_rows(DType::Q8_0, src.data(), 1, 32, DType::I8, reinterpret_cast<std::byte*>(dst.data())); },
      {"cannot convert tensors to I8"});
  gguf_test::expect_error(
      [&] { convert_rows(DType::I32, src.data(), 1, 8, DType::F32, reinterpret_cast<std::byte*>(dst.data())); },
      {"cannot dequantize tensors of type I32"});
  std::vector<int64_t> map = {1};
  gguf_test::expect_error(
      [&] { convert_rows(DType::Q8_0, src.data(), 1, 32, DType::F32, reinterpret_cast<std::byte*>(dst.data()), map); },
      {"row map entry 1"});
}

}  // namespace
}  // namespace upg::io
