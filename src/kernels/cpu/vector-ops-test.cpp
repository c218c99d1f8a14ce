#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/for-each-target.h"
#include "upg/kernels.h"
#include "upg/tensor.h"

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

// Attention's batched forms: rows `stride` apart (a KV cache slot holds every head), a
// head width below, at and past the 4-vector block, and 1 to many positions.
TEST(VectorOps, DotRowsAndAxpyRows) {
  std::mt19937 rng(7);
  testing::for_each_target([&](const std::string&) {
    for (int64_t dim : {7, 32, 64, 80, 128, 130})
      for (int64_t rows : {1, 5, 33}) {
        SCOPED_TRACE(::testing::Message() << "dim " << dim << " rows " << rows);
        const int64_t stride = dim * 3 + 5;
        const auto q = random_vec(dim, rng), kv = random_vec(rows * stride, rng), a = random_vec(rows, rng);
        std::vector<float> scores(static_cast<size_t>(rows) + 1, 9.0f);
        dot_rows(q.data(), kv.data(), stride, rows, dim, scores.data());
        ASSERT_EQ(scores.back(), 9.0f);
        auto out0 = random_vec(dim, rng);
        auto out = out0;
        out.push_back(9.0f);
        axpy_rows(a.data(), kv.data(), stride, rows, dim, out.data());
        ASSERT_EQ(out.back(), 9.0f);
        // The f16 forms over the same rows rounded to f16 give what the f32 forms give
        // on the rounded rows (f32_to_f16 checked against the scalar conversion).
        std::vector<uint16_t> kv16(kv.size());
        f32_to_f16(kv.data(), kv16.data(), int64_t(kv.size()));
        std::vector<float> kvr(kv.size());
        for (size_t i = 0; i < kv.size(); ++i) {
          ASSERT_EQ(kv16[i], fp32_to_fp16(kv[i])) << i;
          kvr[i] = fp16_to_fp32(kv16[i]);
        }
        std::vector<float> s32(static_cast<size_t>(rows)), s16(s32), o32 = out0, o16 = out0;
        dot_rows(q.data(), kvr.data(), stride, rows, dim, s32.data());
        dot_rows(q.data(), kv16.data(), stride, rows, dim, s16.data());
        axpy_rows(a.data(), kvr.data(), stride, rows, dim, o32.data());
        axpy_rows(a.data(), kv16.data(), stride, rows, dim, o16.data());
        // Equal up to FMA contraction, which the compiler may choose per instantiation.
        for (int64_t p = 0; p < rows; ++p) ASSERT_NEAR(s16[size_t(p)], s32[size_t(p)], 1e-6 * (1 + std::fabs(s32[size_t(p)])));
        for (int64_t i = 0; i < dim; ++i) ASSERT_NEAR(o16[size_t(i)], o32[size_t(i)], 1e-6 * (1 + std::fabs(o32[size_t(i)])));
        // The int8 forms, one scale per row, give what the f32 forms give on the
        // dequantized rows, up to where the scale is applied.
        std::vector<int8_t> kv8(kv.size());
        std::vector<float> sc(static_cast<size_t>(rows)), kvd(kv.size());
        for (int64_t p = 0; p < rows; ++p) {
          const size_t r = size_t(p * stride);
          sc[size_t(p)] = quantize_i8(kv.data() + r, dim, kv8.data() + r);
          for (int64_t i = 0; i < dim; ++i) {
            ASSERT_LE(std::fabs(kv[r + size_t(i)] - sc[size_t(p)] * kv8[r + size_t(i)]), 0.5f * sc[size_t(p)] * 1.0001f);
            kvd[r + size_t(i)] = sc[size_t(p)] * kv8[r + size_t(i)];
          }
        }
        std::vector<float> sd(s32), s8(s32), od = out0, o8 = out0;
        dot_rows(q.data(), kvd.data(), stride, rows, dim, sd.data());
        dot_rows(q.data(), kv8.data(), sc.data(), stride, rows, dim, s8.data());
        axpy_rows(a.data(), kvd.data(), stride, rows, dim, od.data());
        axpy_rows(a.data(), kv8.data(), sc.data(), stride, rows, dim, o8.data());
        for (int64_t p = 0; p < rows; ++p) ASSERT_NEAR(s8[size_t(p)], sd[size_t(p)], 1e-5 * (1 + std::fabs(sd[size_t(p)])));
        for (int64_t i = 0; i < dim; ++i) ASSERT_NEAR(o8[size_t(i)], od[size_t(i)], 1e-5 * (1 + std::fabs(od[size_t(i)])));
        for (int64_t p = 0; p < rows; ++p) {
          double ref = 0, mag = 0;
          for (int64_t i = 0; i < dim; ++i) {
            ref += double(q[size_t(i)]) * kv[size_t(p * stride + i)];
            mag += std::fabs(double(q[size_t(i)]) * kv[size_t(p * stride + i)]);
          }
          expect_close(scores[size_t(p)], ref, mag);
        }
        for (int64_t i = 0; i < dim; ++i) {
          double ref = out0[size_t(i)], mag = std::fabs(out0[size_t(i)]);
          for (int64_t p = 0; p < rows; ++p) {
            ref += double(a[size_t(p)]) * kv[size_t(p * stride + i)];
            mag += std::fabs(double(a[size_t(p)]) * kv[size_t(p * stride + i)]);
          }
          expect_close(out[size_t(i)], ref, mag);
        }
      }
  });
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
