#pragma once
// Inputs, weights and the output error shared by the SparseGPT and GPTQ tests.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "compress/hessian.h"

namespace upg::compress::fixtures {

// x [n, cols] with correlated columns (random mixing of independent normals), so the
// Hessian is far from diagonal: that is where SparseGPT's update pays.
inline std::vector<float> correlated_inputs(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> z(size_t(n * cols)), mix(size_t(cols * cols)), x(size_t(n * cols), 0.0f);
  for (auto& v : z) v = nd(rng);
  for (auto& v : mix) v = nd(rng) / std::sqrt(float(cols));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < cols; ++j) {
      float s = 0.5f * z[size_t(t * cols + j)];
      for (int64_t k = 0; k < cols; ++k) s += z[size_t(t * cols + k)] * mix[size_t(k * cols + j)];
      x[size_t(t * cols + j)] = s;
    }
  return x;
}

inline std::vector<float> random_weights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> w(size_t(rows * cols));
  for (auto& v : w) v = nd(rng);
  return w;
}

inline Hessian hessian_of(const std::vector<float>& x, int64_t n, int64_t cols) {
  Hessian h = make_hessian(cols);
  accumulate_hessian(h, x.data(), n / 2, 2);  // in two calls, as calibration chunks do
  accumulate_hessian(h, x.data() + (n / 2) * cols, n - n / 2, 1);
  symmetrize(h);
  return h;
}

// sum over tokens and rows of ((W - W') x)^2
inline double output_error(const std::vector<float>& w, const std::vector<float>& w2, const std::vector<float>& x,
                    int64_t rows, int64_t cols, int64_t n) {
  double e = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t j = 0; j < cols; ++j)
        s += (double(w[size_t(r * cols + j)]) - w2[size_t(r * cols + j)]) * x[size_t(t * cols + j)];
      e += s * s;
    }
  return e;
}

// A layer's calibration inputs x [n, cols], their Hessian h and its inverse factor u (1%
// dampening), and weights w [rows, cols].
struct Layer {
  int64_t n, rows, cols;
  std::vector<float> x;
  Hessian h;
  std::vector<float> u, w;
};
inline Layer make_layer(int64_t n, int64_t rows, int64_t cols, uint32_t seed) {
  Layer l{n, rows, cols, correlated_inputs(n, cols, seed), {}, {}, random_weights(rows, cols, seed + 1)};
  l.h = hessian_of(l.x, n, cols);
  l.u = inverse_factor(l.h, 0.01, 2);
  return l;
}

}  // namespace upg::compress::fixtures
