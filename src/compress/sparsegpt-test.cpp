// SparseGPT against closed forms and against Wanda on the loss both try to keep small:
// the layer's output error on the calibration inputs.
#include "compress/sparsegpt.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "compress/hessian.h"
#include "compress/sweep-fixtures.h"
#include "upg/core/error.h"

namespace upg::compress {
namespace {
using namespace fixtures;

TEST(Hessian, AccumulatesXtX) {
  const int64_t n = 37, cols = 11;
  const auto x = correlated_inputs(n, cols, 1);
  const Hessian h = hessian_of(x, n, cols);
  EXPECT_EQ(h.tokens, n);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t t = 0; t < n; ++t) s += double(x[size_t(t * cols + i)]) * x[size_t(t * cols + j)];
      EXPECT_NEAR(h.h[size_t(i * cols + j)], s, 1e-4 * (1 + std::fabs(s))) << i << "," << j;
    }
}

TEST(Hessian, CrossAccumulatesTargetTimesInput) {
  const int64_t n = 29, cols = 9;
  const auto a = correlated_inputs(n, cols, 11), b = correlated_inputs(n, cols, 12);
  Hessian c = make_hessian(cols);
  accumulate_cross(c, a.data(), b.data(), n / 2, 2);  // in two calls, as calibration chunks do
  accumulate_cross(c, a.data() + (n / 2) * cols, b.data() + (n / 2) * cols, n - n / 2, 1);
  EXPECT_EQ(c.tokens, n);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t t = 0; t < n; ++t) s += double(a[size_t(t * cols + i)]) * b[size_t(t * cols + j)];
      EXPECT_NEAR(c.h[size_t(i * cols + j)], s, 1e-4 * (1 + std::fabs(s))) << i << "," << j;
    }
}

TEST(Hessian, InverseFactorIsUpperAndInvertsTheDampedHessian) {
  const int64_t n = 64, cols = 13;
  auto x = correlated_inputs(n, cols, 2);
  for (int64_t t = 0; t < n; ++t) x[size_t(t * cols + 5)] = 0;  // a dead input channel
  const Hessian h = hessian_of(x, n, cols);
  const std::vector<float> u = inverse_factor(h, 0.01, 2);
  double mean = 0;
  for (int64_t i = 0; i < cols; ++i) mean += h.h[size_t(i * cols + i)] > 0 ? h.h[size_t(i * cols + i)] : 1.0;
  const double lambda = 0.01 * mean / double(cols);
  // (H + lambda I) U^T U = I, with the dead channel's diagonal taken as 1.
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      if (j < i) {
        EXPECT_EQ(u[size_t(i * cols + j)], 0.0f);
      }
      double s = 0;
      for (int64_t k = 0; k < cols; ++k) {
        double hd = h.h[size_t(i * cols + k)];
        if (k == i) hd = (hd > 0 ? hd : 1.0) + lambda;
        double inv = 0;  // (U^T U)[k][j]
        for (int64_t m = 0; m < cols; ++m) inv += double(u[size_t(m * cols + k)]) * u[size_t(m * cols + j)];
        s += hd * inv;
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 2e-3) << i << "," << j;
    }
}

// Pruning only the first column is the Optimal Brain Surgeon step in closed form:
// w' = w - w_0 / [H^-1]_00 * H^-1[:, 0], here with H^-1 from Gauss-Jordan elimination.
TEST(SparseGpt, FirstColumnAloneIsTheObsUpdate) {
  const int64_t n = 50, cols = 8;
  const auto x = correlated_inputs(n, cols, 3);
  const Hessian h = hessian_of(x, n, cols);
  std::vector<float> w = {0.001f, 0.9f, -1.1f, 0.7f, 1.3f, -0.8f, 1.0f, -1.2f};
  const std::vector<float> w0 = w;
  const std::vector<float> u = inverse_factor(h, 0.0, 1);
  sparsegpt_prune(w, 1, cols, u, Pattern{}, 1.0 / 8, 1, cols);
  // Gauss-Jordan inverse of H (no damping).
  std::vector<double> a(size_t(cols * 2 * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) a[size_t(i * 2 * cols + j)] = h.h[size_t(i * cols + j)];
    a[size_t(i * 2 * cols + cols + i)] = 1;
  }
  for (int64_t p = 0; p < cols; ++p) {
    const double piv = a[size_t(p * 2 * cols + p)];
    for (int64_t j = 0; j < 2 * cols; ++j) a[size_t(p * 2 * cols + j)] /= piv;
    for (int64_t i = 0; i < cols; ++i)
      if (i != p) {
        const double f = a[size_t(i * 2 * cols + p)];
        for (int64_t j = 0; j < 2 * cols; ++j) a[size_t(i * 2 * cols + j)] -= f * a[size_t(p * 2 * cols + j)];
      }
  }
  auto hinv = [&](int64_t i, int64_t j) { return a[size_t(i * 2 * cols + cols + j)]; };
  EXPECT_EQ(w[0], 0.0f);
  for (int64_t j = 1; j < cols; ++j)
    EXPECT_NEAR(w[size_t(j)], w0[size_t(j)] - w0[0] / hinv(0, 0) * hinv(j, 0), 1e-4) << j;
}

int64_t zeros(const float* row, int64_t n) {
  int64_t z = 0;
  for (int64_t j = 0; j < n; ++j) z += row[j] == 0.0f;
  return z;
}

// Wanda's choice on the same inputs: |w| * ||x_j||, no update.
std::vector<float> wanda(const std::vector<float>& w, const Hessian& h, int64_t rows, int64_t cols,
                         const Pattern& p, double sparsity) {
  std::vector<float> norms(static_cast<size_t>(cols)), out(w.size(), 0.0f);
  for (int64_t j = 0; j < cols; ++j) norms[size_t(j)] = std::sqrt(h.h[size_t(j * cols + j)]);
  std::vector<uint32_t> kept;
  for (int64_t r = 0; r < rows; ++r) {
    select_row({w.data() + r * cols, size_t(cols)}, norms, p, sparsity, kept);
    for (uint32_t c : kept) out[size_t(r * cols + c)] = w[size_t(r * cols + c)];
  }
  return out;
}

TEST(SparseGpt, ExactCountsAndLessOutputErrorThanWanda) {
  const Layer layer = make_layer(256, 24, 96, 4);
  const auto& [n, rows, cols, x, h, u, w] = layer;
  for (const auto& [p, sparsity] : {std::pair{Pattern{}, 0.5}, {Pattern{}, 0.3}, {Pattern{2, 4}, 0.0}, {Pattern{4, 8}, 0.0}}) {
    SCOPED_TRACE(p.name() + " " + std::to_string(sparsity));
    std::vector<float> s = w;
    sparsegpt_prune(s, rows, cols, u, p, sparsity, 2, 32);
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = s.data() + r * cols;
      if (p.is_nm())
        for (int64_t g = 0; g < cols; g += p.m) EXPECT_EQ(zeros(row + g, p.m), p.m - p.n) << r << " " << g;
      else
        EXPECT_EQ(zeros(row, cols), cols - kept_per_row(cols, sparsity)) << r;
    }
    const double e_sgpt = output_error(w, s, x, rows, cols, n);
    const double e_wanda = output_error(w, wanda(w, h, rows, cols, p, sparsity), x, rows, cols, n);
    EXPECT_LT(e_sgpt, 0.7 * e_wanda);
    // The same result on one thread: rows are independent.
    std::vector<float> s1 = w;
    sparsegpt_prune(s1, rows, cols, u, p, sparsity, 1, 32);
    EXPECT_EQ(s, s1);
  }
}

// sum over tokens and rows of (W x_t - V y_t)^2: V on inputs y against W on inputs x.
double asymmetric_error(const std::vector<float>& w, const std::vector<float>& v, const std::vector<float>& x,
                        const std::vector<float>& y, int64_t rows, int64_t cols, int64_t n) {
  double e = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t j = 0; j < cols; ++j)
        s += double(w[size_t(r * cols + j)]) * x[size_t(t * cols + j)] -
             double(v[size_t(r * cols + j)]) * y[size_t(t * cols + j)];
      e += s * s;
    }
  return e;
}

// The target solves v (H + lambda I) = w (C + lambda I); with no drift (C = H) it is w.
TEST(SparseGpt, TargetSolvesTheRidgeEquationsAndKeepsWWithoutDrift) {
  const int64_t n = 200, rows = 5, cols = 24;
  const auto x = correlated_inputs(n, cols, 13);
  auto y = x;  // the input after earlier layers were pruned: x plus a distortion
  const auto noise = correlated_inputs(n, cols, 14);
  for (size_t k = 0; k < y.size(); ++k) y[k] = 0.8f * y[k] + 0.3f * noise[k];
  const std::vector<float> w = random_weights(rows, cols, 15);

  const Hessian hx = hessian_of(x, n, cols);
  double lambda = 0;
  std::vector<float> same = w;
  {
    Hessian c = make_hessian(cols);
    accumulate_cross(c, x.data(), x.data(), n);
    const std::vector<float> ux = inverse_factor(hx, 0.01, 1, &lambda);
    sparsegpt_target(same, rows, cols, c, lambda, ux, 1.0, 2);
  }
  for (size_t k = 0; k < w.size(); ++k) EXPECT_NEAR(same[k], w[k], 2e-3 * (1 + std::fabs(w[k]))) << k;

  const Hessian hy = hessian_of(y, n, cols);
  Hessian c = make_hessian(cols);
  accumulate_cross(c, x.data(), y.data(), n);
  const std::vector<float> u = inverse_factor(hy, 0.01, 1, &lambda);
  EXPECT_GT(lambda, 0.0);
  std::vector<float> v = w, half = w;
  sparsegpt_target(v, rows, cols, c, lambda, u, 1.0, 2);
  sparsegpt_target(half, rows, cols, c, lambda, u, 0.5, 1);
  for (size_t k = 0; k < w.size(); ++k) EXPECT_NEAR(half[k], 0.5 * (v[k] + w[k]), 1e-5 * (1 + std::fabs(w[k]))) << k;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      double lhs = lambda * v[size_t(r * cols + j)], rhs = lambda * w[size_t(r * cols + j)], scale = 0;
      for (int64_t i = 0; i < cols; ++i) {
        lhs += double(v[size_t(r * cols + i)]) * hy.h[size_t(i * cols + j)];
        rhs += double(w[size_t(r * cols + i)]) * c.h[size_t(i * cols + j)];
        scale += std::fabs(double(w[size_t(r * cols + i)]) * c.h[size_t(i * cols + j)]);
      }
      EXPECT_NEAR(lhs, rhs, 1e-3 * scale) << r << "," << j;
    }
  // So it reproduces W's outputs on the distorted inputs better than W itself, and
  // pruning it keeps more of that than pruning W.
  EXPECT_LT(asymmetric_error(w, v, x, y, rows, cols, n), 0.7 * asymmetric_error(w, w, x, y, rows, cols, n));
  std::vector<float> pruned_v = v, pruned_w = w;
  sparsegpt_prune(pruned_v, rows, cols, u, Pattern{}, 0.5, 1, 8);
  sparsegpt_prune(pruned_w, rows, cols, u, Pattern{}, 0.5, 1, 8);
  EXPECT_LT(asymmetric_error(w, pruned_v, x, y, rows, cols, n), asymmetric_error(w, pruned_w, x, y, rows, cols, n));
  EXPECT_THROW(sparsegpt_target(v, rows + 1, cols, c, lambda, u), Error);
  EXPECT_THROW(sparsegpt_target(v, rows, cols, c, lambda, std::span(u).first(10)), Error);
  EXPECT_THROW(sparsegpt_target(v, rows, cols, c, lambda, u, 1.5), Error);
}

TEST(SparseGpt, ZeroSparsityChangesNothingAndSizesAreChecked) {
  const int64_t n = 40, cols = 16;
  const auto x = correlated_inputs(n, cols, 6);
  const std::vector<float> u = inverse_factor(hessian_of(x, n, cols));
  std::vector<float> w = random_weights(3, cols, 7);
  const std::vector<float> w0 = w;
  sparsegpt_prune(w, 3, cols, u, Pattern{}, 0.0);
  EXPECT_EQ(w, w0);
  EXPECT_THROW(sparsegpt_prune(w, 4, cols, u, Pattern{}, 0.5), Error);
  EXPECT_THROW(sparsegpt_prune(w, 3, cols, std::span(u).first(10), Pattern{}, 0.5), Error);
  std::vector<float> odd(size_t(3 * 6));
  const std::vector<float> u6 = inverse_factor(hessian_of(correlated_inputs(20, 6, 8), 20, 6));
  EXPECT_THROW(sparsegpt_prune(odd, 3, 6, u6, Pattern{2, 4}, 0.0), Error);
}

}  // namespace
}  // namespace upg::compress
