// Attention's row kernels (attention-rows.cpp) against a double reference: groups of 1
// to 5 query heads (passes of 1, 2 and 3 heads), head widths below, at and past the
// 4-vector block and not a multiple of a vector, 1 to many rows `stride` apart, f32,
// f16 and int8 rows, on every SIMD target.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/for-each-target.h"
#include "kernels/cpu/kernels.h"
#include "upg/core/tensor.h"

namespace upg::kernels {
namespace {

std::vector<float> random_vec(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// The rows as each type stores them, and the values they stand for.
struct Rows {
  std::vector<float> f32;      // [rows, stride]
  std::vector<uint16_t> f16;   // the same rounded to f16
  std::vector<int8_t> i8;      // the same quantized, one scale per row
  std::vector<float> scales;   // [rows]
  std::vector<float> as_f16;   // what f16 stands for
  std::vector<float> as_i8;    // what i8 stands for
};

Rows make_rows(int64_t rows, int64_t stride, int64_t dim, std::mt19937& rng) {
  Rows r;
  r.f32 = random_vec(rows * stride, rng);
  r.f16.resize(r.f32.size());
  f32_to_f16(r.f32.data(), r.f16.data(), int64_t(r.f32.size()));
  r.as_f16.resize(r.f32.size());
  for (size_t i = 0; i < r.f32.size(); ++i) {
    EXPECT_EQ(r.f16[i], fp32_to_fp16(r.f32[i])) << i;
    r.as_f16[i] = fp16_to_fp32(r.f16[i]);
  }
  r.i8.assign(r.f32.size(), 0);
  r.as_i8.assign(r.f32.size(), 0.0f);
  r.scales.resize(size_t(rows));
  for (int64_t p = 0; p < rows; ++p) {
    const size_t o = size_t(p * stride);
    r.scales[size_t(p)] = quantize_i8(r.f32.data() + o, dim, r.i8.data() + o);
    for (int64_t i = 0; i < dim; ++i) {
      r.as_i8[o + size_t(i)] = r.scales[size_t(p)] * r.i8[o + size_t(i)];
      EXPECT_LE(std::fabs(r.as_i8[o + size_t(i)] - r.f32[o + size_t(i)]), 0.5001f * r.scales[size_t(p)]);
    }
  }
  return r;
}

TEST(AttentionRows, GroupsOfHeadsMatchAPlainLoop) {
  std::mt19937 rng(7);
  testing::for_each_target([&](const std::string&) {
    for (int64_t heads : {1, 2, 3, 4, 5})
      for (int64_t dim : {7, 32, 64, 80, 128, 130})
        for (int64_t rows : {1, 2, 7, 33}) {
          SCOPED_TRACE(::testing::Message() << heads << " heads, dim " << dim << ", rows " << rows);
          const int64_t stride = dim * 3 + 5, ss = rows + 3, as = rows + 2, os = dim + 2;
          const Rows kv = make_rows(rows, stride, dim, rng);
          const auto q = random_vec(heads * dim, rng), a = random_vec(heads * as, rng);
          const auto out0 = random_vec(heads * os, rng);
          // Each type against the values it stands for; a slot past every row of output
          // must stay untouched.
          auto check = [&](const char* type, const std::vector<float>& values, auto&& dot, auto&& axpy) {
            SCOPED_TRACE(type);
            std::vector<float> scores(size_t(heads * ss), 9.0f), out = out0;
            dot(scores.data());
            axpy(out.data());
            for (int64_t j = 0; j < heads; ++j) {
              for (int64_t p = 0; p < rows; ++p) {
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < dim; ++i) {
                  ref += double(q[size_t(j * dim + i)]) * values[size_t(p * stride + i)];
                  mag += std::fabs(double(q[size_t(j * dim + i)]) * values[size_t(p * stride + i)]);
                }
                ASSERT_NEAR(scores[size_t(j * ss + p)], ref, 1e-5 * mag + 1e-30) << "score " << j << ", " << p;
              }
              for (int64_t p = rows; p < ss; ++p) ASSERT_EQ(scores[size_t(j * ss + p)], 9.0f);
              for (int64_t i = 0; i < dim; ++i) {
                double ref = out0[size_t(j * os + i)], mag = std::fabs(ref);
                for (int64_t p = 0; p < rows; ++p) {
                  ref += double(a[size_t(j * as + p)]) * values[size_t(p * stride + i)];
                  mag += std::fabs(double(a[size_t(j * as + p)]) * values[size_t(p * stride + i)]);
                }
                ASSERT_NEAR(out[size_t(j * os + i)], ref, 1e-5 * mag + 1e-30) << "out " << j << ", " << i;
              }
              for (int64_t i = dim; i < os; ++i) ASSERT_EQ(out[size_t(j * os + i)], out0[size_t(j * os + i)]);
            }
          };
          check("f32", kv.f32,
                [&](float* s) { dot_rows(q.data(), heads, kv.f32.data(), stride, rows, dim, s, ss); },
                [&](float* o) { axpy_rows(a.data(), as, heads, kv.f32.data(), stride, rows, dim, o, os); });
          check("f16", kv.as_f16,
                [&](float* s) { dot_rows(q.data(), heads, kv.f16.data(), stride, rows, dim, s, ss); },
                [&](float* o) { axpy_rows(a.data(), as, heads, kv.f16.data(), stride, rows, dim, o, os); });
          check("int8", kv.as_i8,
                [&](float* s) { dot_rows(q.data(), heads, kv.i8.data(), kv.scales.data(), stride, rows, dim, s, ss); },
                [&](float* o) {
                  axpy_rows(a.data(), as, heads, kv.i8.data(), kv.scales.data(), stride, rows, dim, o, os);
                });
        }
  });
}

}  // namespace
}  // namespace upg::kernels
