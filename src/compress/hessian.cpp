#include "compress/hessian.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "compress/matrix.h"
#include "upg/core/error.h"
#include "upg/kernels/cpu.h"

namespace upg::compress {

namespace {

// Four accumulators: the factorisations are nothing but these dot products, and one
// accumulator would serialise on the add latency.
double dot_d(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < n; ++k) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

// In-place Cholesky A = L L^T of a row-major [n, n] matrix, lower triangle (the upper is
// left as it was). False when a pivot is not positive.
bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double* li = a.data() + i * n;
    for (int64_t j = 0; j < i; ++j) {
      const double* lj = a.data() + j * n;
      li[j] = (li[j] - dot_d(li, lj, j)) / lj[j];
    }
    const double d = li[i] - dot_d(li, li, i);
    if (!(d > 0) || !std::isfinite(d)) return false;
    li[i] = std::sqrt(d);
  }
  return true;
}

}  // namespace

Hessian make_hessian(int64_t cols) {
  Hessian H;
  H.cols = cols;
  H.h.assign(size_t(cols * cols), 0.0f);
  return H;
}

namespace {

// out[i, j] += sum_t a_t[i] * b_t[j] for a, b [n, c]: from column i0 of each block of
// rows when `upper` (the Hessian: entries left of the diagonal land in the lower
// triangle, which symmetrize() overwrites), else every column.
void accumulate_outer(float* out, const float* a, const float* b, int64_t n, int64_t c, bool upper, int threads) {
  constexpr int64_t kRows = 4;  // rows of `out` updated per pass over x: 4 x 6 KB stay in L1
  // Row i of the upper triangle is c - i long: blocks are dealt round-robin to even out.
  parallel_interleaved((c + kRows - 1) / kRows, threads, [&](int64_t blk) {
    const int64_t i0 = blk * kRows, i1 = std::min(c, i0 + kRows), j0 = upper ? i0 : 0;
    for (int64_t t = 0; t < n; ++t) {
      const float* at = a + t * c;
      const float* bt = b + t * c;
      for (int64_t i = i0; i < i1; ++i)
        if (at[i] != 0.0f) kernels::axpy(at[i], bt + j0, out + i * c + j0, c - j0);
    }
  });
}

}  // namespace

void accumulate_hessian(Hessian& H, const float* x, int64_t n, int threads) {
  accumulate_outer(H.h.data(), x, x, n, H.cols, true, threads);
  H.tokens += n;
}

void accumulate_cross(Hessian& C, const float* target, const float* x, int64_t n, int threads) {
  accumulate_outer(C.h.data(), target, x, n, C.cols, false, threads);
  C.tokens += n;
}

void symmetrize(Hessian& H) {
  const int64_t c = H.cols;
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = 0; j < i; ++j) H.h[size_t(i * c + j)] = H.h[size_t(j * c + i)];
}

std::vector<float> inverse_factor(const Hessian& H, double damp, int threads, double* lambda_used) {
  const int64_t n = H.cols;
  if (n <= 0 || int64_t(H.h.size()) != n * n)
    throw Error(fmt::format("sparsegpt: a Hessian of {} values for {} columns", H.h.size(), n));
  // Reversed: r(a) = n-1-a. Cholesky of the reversed matrix gives, once inverted and
  // reversed back, the upper factor of the inverse (see the header).
  auto rev = [n](int64_t a) { return n - 1 - a; };
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = H.h[size_t(i * n + i)];
    mean += d > 0 ? d : 1.0;
  }
  mean /= double(n);
  std::vector<double> a(size_t(n * n));
  bool ok = false;
  double lambda = damp * mean;
  for (int attempt = 0; attempt < 4 && !ok; ++attempt, lambda *= 10) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) a[size_t(i * n + j)] = H.h[size_t(rev(i) * n + rev(j))];
    for (int64_t i = 0; i < n; ++i) {
      double& d = a[size_t(i * n + i)];
      if (!(d > 0)) d = 1.0;
      d += lambda;
    }
    ok = cholesky_lower(a, n);
    if (ok && lambda_used) *lambda_used = lambda;
  }
  if (!ok) throw Error(fmt::format("sparsegpt: the {}x{} input Hessian is not positive definite even damped", n, n));

  // M = L^-1 (lower), stored transposed so both operands of every dot are contiguous:
  // inv[j][i] = M[i][j] = -(sum_{k=j}^{i-1} L[i][k] M[k][j]) / L[i][i] for i > j.
  // Each column j is independent of the others; its cost shrinks with j (interleaved).
  std::vector<double> inv(size_t(n * n), 0.0);
  parallel_interleaved(n, threads, [&](int64_t j) {
    double* mj = inv.data() + j * n;
    mj[j] = 1.0 / a[size_t(j * n + j)];
    for (int64_t i = j + 1; i < n; ++i) {
      const double* li = a.data() + i * n;
      mj[i] = -dot_d(li + j, mj + j, i - j) / li[i];
    }
  });
  // U[p][q] = M[rev p][rev q] = inv[rev q][rev p], upper because M is lower.
  std::vector<float> u(size_t(n * n), 0.0f);
  for (int64_t p = 0; p < n; ++p)
    for (int64_t q = p; q < n; ++q) u[size_t(p * n + q)] = float(inv[size_t(rev(q) * n + rev(p))]);
  return u;
}

}  // namespace upg::compress
