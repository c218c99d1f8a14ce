#include "compress/blas.h"

#include <cblas.h>

#include <cstddef>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/thread-pool.h"

// LAPACK's Fortran entry points, which OpenBLAS exports; Debian ships no C header for
// them beside OpenBLAS (LAPACKE is another package), so they are declared here, with the
// hidden string-length arguments gfortran's calling convention appends.
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda, int* info, size_t uplo_len,
             size_t diag_len);
}

namespace upg::compress::blas {

namespace {

int as_int(int64_t v, const char* what) {
  if (v < 0 || v > int64_t(INT32_MAX)) throw Error(fmt::format("blas: {} {} is out of LAPACK's range", what, v));
  return int(v);
}

}  // namespace

void set_threads(int threads) { openblas_set_num_threads(threads > 0 ? threads : ThreadPool::hardware_threads()); }

void syrk_upper(float* c_mat, const float* a, int64_t n, int64_t c) {
  if (n <= 0 || c <= 0) return;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(c), blasint(n), 1.0f, a, blasint(c), 1.0f, c_mat,
              blasint(c));
}

void gemm_tn(float* c_mat, const float* a, const float* b, int64_t n, int64_t m, int64_t k, float alpha, int64_t ldc) {
  if (n <= 0 || m <= 0 || k <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(m), blasint(k), blasint(n), alpha, a, blasint(m), b,
              blasint(k), 1.0f, c_mat, blasint(ldc));
}

void gemm_nn(float* c_mat, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t m,
             int64_t n, int64_t k, float alpha) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(k), blasint(n), alpha, a, blasint(lda),
              b, blasint(ldb), 1.0f, c_mat, blasint(ldc));
}

void trmm_right_upper(float* b, int64_t m, int64_t n, const float* u, bool transpose) {
  if (m <= 0 || n <= 0) return;
  cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, transpose ? CblasTrans : CblasNoTrans, CblasNonUnit, blasint(m),
              blasint(n), 1.0f, u, blasint(n), b, blasint(n));
}

// A row-major lower triangle is a column-major upper one: LAPACK is asked for 'U'.
bool cholesky_lower(double* a, int64_t n) {
  const int nn = as_int(n, "order");
  int info = 0;
  dpotrf_("U", &nn, a, &nn, &info, 1);
  if (info < 0) throw Error(fmt::format("blas: dpotrf rejected argument {}", -info));
  return info == 0;
}

void invert_lower(double* l, int64_t n) {
  const int nn = as_int(n, "order");
  int info = 0;
  dtrtri_("U", "N", &nn, l, &nn, &info, 1, 1);
  if (info != 0) throw Error(fmt::format("blas: dtrtri failed ({}): a zero on the factor's diagonal", info));
}

}  // namespace upg::compress::blas
