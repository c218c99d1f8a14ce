#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/for-each-target.h"
#include "kernels/cpu/kernels.h"
#include "upg/core/tensor.h"

namespace upg::kernels {
namespace {

// Sizes cover: shorter than one vector, not a multiple of 4/8/16 lanes, one full SIMD
// block plus a tail, and the model's hidden and intermediate widths.
constexpr int64_t kSizes[] = {1, 7, 63, 64, 577, 1536};
// Relative tolerance for f32 kernels versus a double reference.
constexpr double kTol = 1e-5;

std::vector<float> random_vec(int64_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

void expect_close(double got, double want, double scale) {
  ASSERT_LE(std::fabs(got - want), kTol * scale + 1e-30) << "got " << got << " want " << want;
}

TEST(VectorOps, DotAndAxpy) {
  std::mt19937 rng(1);
  testing::for_each_target([&](const std::string&) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(n);
      const auto x = random_vec(n, rng), y0 = random_vec(n, rng);
      double ref = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        ref += double(x[i]) * y0[i];
        mag += std::fabs(double(x[i]) * y0[i]);
      }
      expect_close(dot(x.data(), y0.data(), n), ref, mag);

      auto y = y0;
      y.push_back(5.0f);  // sentinel
      axpy(-0.75f, x.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) expect_close(y[i], y0[i] - 0.75 * x[i], std::fabs(y0[i]) + std::fabs(x[i]));
      ASSERT_EQ(y.back(), 5.0f);
    }
  });
  EXPECT_EQ(dot(nullptr, nullptr, 0), 0.0f);
}

TEST(VectorOps, AddInplace) {
  std::mt19937 rng(2);
  testing::for_each_target([&](const std::string&) {
    for (int64_t n : kSizes) {
      const auto x = random_vec(n, rng), y0 = random_vec(n, rng);
      auto y = y0;
      add_inplace(y.data(), x.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y0[i] + x[i]);
    }
  });
}

TEST(VectorOps, RmsNorm) {
  std::mt19937 rng(3);
  testing::for_each_target([&](const std::string&) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(n);
      const int64_t tokens = 3;
      const auto x = random_vec(n * tokens, rng, -3.0f, 3.0f), w = random_vec(n, rng);
      std::vector<float> out(static_cast<size_t>(n * tokens));
      rmsnorm(x.data(), w.data(), out.data(), n, tokens, 1e-5f);
      for (int64_t t = 0; t < tokens; ++t) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += double(x[t * n + i]) * x[t * n + i];
        const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
        for (int64_t i = 0; i < n; ++i) {
          const double want = x[t * n + i] * scale * w[i];
          expect_close(out[t * n + i], want, std::fabs(want));
        }
      }
      // In place is allowed (the model normalises its residual copy).
      auto inplace = x;
      rmsnorm(inplace.data(), w.data(), inplace.data(), n, tokens, 1e-5f);
      for (int64_t i = 0; i < n * tokens; ++i) ASSERT_EQ(inplace[i], out[i]);
    }
  });
}

TEST(VectorOps, Softmax) {
  std::mt19937 rng(4);
  testing::for_each_target([&](const std::string&) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(n);
      const auto x0 = random_vec(n, rng, -20.0f, 20.0f);
      auto x = x0;
      softmax(x.data(), n);
      double mx = -INFINITY, sum = 0;
      for (float v : x0) mx = std::max(mx, double(v));
      for (float v : x0) sum += std::exp(v - mx);
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(x0[i] - mx) / sum;
        expect_close(x[i], want, want);
      }
    }
    // A fully masked row becomes uniform rather than NaN.
    std::vector<float> masked(5, -INFINITY);
    softmax(masked.data(), 5);
    for (float v : masked) ASSERT_FLOAT_EQ(v, 0.2f);
  });
}

TEST(VectorOps, SiluMul) {
  std::mt19937 rng(5);
  testing::for_each_target([&](const std::string&) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(n);
      auto gate = random_vec(n, rng, -10.0f, 10.0f);
      gate[0] = -100.0f;  // exp(-g) overflows: the result must be -0, not NaN
      const auto up = random_vec(n, rng);
      std::vector<float> out(static_cast<size_t>(n));
      silu_mul(gate.data(), up.data(), out.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double g = gate[i], want = g / (1.0 + std::exp(-g)) * up[i];
        expect_close(out[i], want, std::fabs(want));
      }
    }
  });
}

}  // namespace
}  // namespace upg::kernels
