#include "compress/hessian.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "compress/blas.h"
#include "compress/matrix.h"
#include "upg/core/error.h"

namespace upg::compress {

Hessian make_hessian(int64_t cols) {
  Hessian H;
  H.cols = cols;
  H.h.assign(size_t(cols * cols), 0.0f);
  return H;
}

void accumulate_hessian(Hessian& H, const float* x, int64_t n, int threads) {
  blas::set_threads(threads);
  blas::syrk_upper(H.h.data(), x, n, H.cols);
  H.tokens += n;
}

void accumulate_cross(Hessian& C, const float* target, const float* x, int64_t n, int threads) {
  blas::set_threads(threads);
  blas::gemm_tn(C.h.data(), target, x, n, C.cols, C.cols, 1.0f, C.cols);
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
  blas::set_threads(threads);
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
    ok = blas::cholesky_lower(a.data(), n);
    if (ok && lambda_used) *lambda_used = lambda;
  }
  if (!ok) throw Error(fmt::format("sparsegpt: the {}x{} input Hessian is not positive definite even damped", n, n));

  // M = L^-1, lower.
  blas::invert_lower(a.data(), n);
  // U[p][q] = M[rev p][rev q], upper because M is lower.
  std::vector<float> u(size_t(n * n), 0.0f);
  parallel_rows(n, threads, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t q = p; q < n; ++q) u[size_t(p * n + q)] = float(a[size_t(rev(p) * n + rev(q))]);
  });
  return u;
}

}  // namespace upg::compress
