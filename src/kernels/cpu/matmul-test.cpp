#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/for-each-target.h"
#include "upg/core/error.h"
#include "kernels/cpu/kernels.h"

namespace upg::kernels {
namespace {

// Weights in one encoding, plus the exact f32 values they decode to (the reference uses
// those, so the test measures accumulation error, not rounding of the weights).
struct Weights {
  DType type;
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

Weights make_weights(DType type, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Weights w{type, {}, std::vector<float>(static_cast<size_t>(n))};
  const size_t width = type == DType::F32 ? 4 : 2;
  w.bytes.resize(static_cast<size_t>(n) * width);
  for (int64_t i = 0; i < n; ++i) {
    float v = dist(rng);
    if (type == DType::F32) {
      std::memcpy(&w.bytes[i * 4], &v, 4);
    } else {
      const uint16_t h = type == DType::F16 ? fp32_to_fp16(v) : fp32_to_bf16(v);
      std::memcpy(&w.bytes[i * 2], &h, 2);
      v = type == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
    }
    w.values[i] = v;
  }
  return w;
}

// Error bound: 1e-5 of sum |w*x| (plus the bias magnitude). f32 accumulation over 577
// terms in 4-16 lanes stays near 1e-6 of that, while a wrong element, a skipped tail
// column or a misplaced row is off by O(1/cols) or more.
constexpr double kRelTol = 1e-5;

void check_matmul(ThreadPool& pool, DType type, int64_t rows, int64_t cols, int64_t n_tokens, bool with_bias,
                  std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message() << dtype_name(type) << " rows=" << rows << " cols=" << cols
                                  << " n_tokens=" << n_tokens << " bias=" << with_bias);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const Weights w = make_weights(type, rows * cols, rng);
  std::vector<float> x(static_cast<size_t>(n_tokens * cols)), bias(static_cast<size_t>(rows));
  for (auto& v : x) v = dist(rng);
  for (auto& v : bias) v = dist(rng);
  // Sentinel past the end catches writes beyond [n_tokens, rows].
  std::vector<float> y(static_cast<size_t>(n_tokens * rows) + 1, 12345.0f);
  matmul(pool, type, w.bytes.data(), rows, cols, x.data(), n_tokens, y.data(), with_bias ? bias.data() : nullptr);
  ASSERT_EQ(y.back(), 12345.0f);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double ref = with_bias ? bias[r] : 0.0, mag = with_bias ? std::fabs(bias[r]) : 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        const double p = double(w.values[r * cols + c]) * double(x[t * cols + c]);
        ref += p;
        mag += std::fabs(p);
      }
      const double got = y[t * rows + r];
      ASSERT_LE(std::fabs(got - ref), kRelTol * mag + 1e-30) << "t=" << t << " r=" << r << " got " << got
                                                             << " want " << ref;
    }
  }
}

TEST(Matmul, MatchesReferenceOnEveryTarget) {
  ThreadPool pool(2);
  std::mt19937 rng(42);
  testing::for_each_target([&](const std::string&) {
    for (DType type : {DType::F32, DType::F16, DType::BF16})
      for (int64_t cols : {1, 7, 63, 577})
        for (int64_t rows : {1, 3, 1000})
          for (int64_t n_tokens : {1, 2, 5, 17})
            for (bool with_bias : {false, true}) check_matmul(pool, type, rows, cols, n_tokens, with_bias, rng);
  });
}

TEST(Matmul, LargeShapesSplitAcrossThreads) {
  // Row counts that are not multiples of the 16-row chunks or the 4-row tiles, and a
  // prefill batch larger than the L2 row block, on the automatically chosen target.
  std::mt19937 rng(7);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    check_matmul(pool, DType::F32, 1539, 576, 1, true, rng);
    check_matmul(pool, DType::F16, 577, 1536, 33, false, rng);
    check_matmul(pool, DType::BF16, 250, 2048, 9, true, rng);
  }
}

TEST(Matmul, ZeroColsGivesBias) {
  ThreadPool pool(2);
  const float bias[3] = {1.0f, -2.0f, 3.5f};
  std::vector<float> y(6, 99.0f);
  const float dummy = 0.0f;
  matmul(pool, DType::F32, &dummy, 3, 0, &dummy, 2, y.data(), bias);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -2.0f, 3.5f, 1.0f, -2.0f, 3.5f}));
}

TEST(Matmul, EmptyShapesAreNoOps) {
  ThreadPool pool(2);
  float y = 7.0f;
  matmul(pool, DType::F32, nullptr, 0, 5, nullptr, 1, &y);
  matmul(pool, DType::F32, nullptr, 5, 5, nullptr, 0, &y);
  EXPECT_EQ(y, 7.0f);
}

TEST(Matmul, RejectsBadInput) {
  ThreadPool pool(1);
  float buf[4] = {};
  EXPECT_THROW(matmul(pool, DType::Q4_1, buf, 1, 4, buf, 1, buf), Error);
  EXPECT_THROW(matmul(pool, DType::I32, buf, 1, 4, buf, 1, buf), Error);
  EXPECT_THROW(matmul(pool, DType::F32, buf, -1, 4, buf, 1, buf), Error);
  EXPECT_THROW(matmul(pool, DType::F32, nullptr, 1, 4, buf, 1, buf), Error);
  EXPECT_THROW(matmul(pool, DType::F32, buf, 1, 4, buf, 1, nullptr), Error);
}

TEST(Targets, ForceAndRestore) {
  const auto targets = available_targets();
  ASSERT_FALSE(targets.empty());
  EXPECT_EQ(simd_target(), targets.front());  // dispatch picks the best
  EXPECT_FALSE(force_target("NOT_A_TARGET"));
  EXPECT_EQ(simd_target(), targets.front());
  ASSERT_TRUE(force_target(targets.back()));
  EXPECT_EQ(simd_target(), targets.back());
  ASSERT_TRUE(force_target(""));
  EXPECT_EQ(simd_target(), targets.front());
}

}  // namespace
}  // namespace upg::kernels
