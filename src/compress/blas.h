#pragma once
// The few BLAS/LAPACK operations the compressor's second-order methods need, on row-major
// matrices, through OpenBLAS. One place sets OpenBLAS's thread count, so callers pass the
// `threads` they were given like everywhere else in the compressor.
#include <cstdint>

namespace upg::compress::blas {

// OpenBLAS's own threads for the calls that follow (<= 0: every core).
void set_threads(int threads);

// C[c, c] += A^T A for A [n, c] (row-major): the upper triangle of C only.
void syrk_upper(float* c_mat, const float* a, int64_t n, int64_t c);

// C[m, k] += alpha * A^T B for A [n, m], B [n, k], C with leading dimension ldc.
void gemm_tn(float* c_mat, const float* a, const float* b, int64_t n, int64_t m, int64_t k, float alpha, int64_t ldc);

// C[m, k] += alpha * A B for A [m, n] (leading dimension lda), B [n, k] (ldb), C (ldc).
void gemm_nn(float* c_mat, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t m,
             int64_t n, int64_t k, float alpha);

// Y[n, m] = X W^T (beta 0) or += (beta 1) for X [n, k], W [m, k]: a linear layer's
// outputs for n tokens.
void gemm_nt(float* y, const float* x, const float* w, int64_t n, int64_t m, int64_t k, float beta);

// B [m, n] := B U^T (transpose) or B U, in place, for U [n, n] upper triangular.
void trmm_right_upper(float* b, int64_t m, int64_t n, const float* u, bool transpose);

// In place on a row-major [n, n] symmetric matrix whose lower triangle holds the values:
// its Cholesky factor L (A = L L^T) in the lower triangle. False when A is not positive
// definite (the matrix is then partly overwritten).
bool cholesky_lower(double* a, int64_t n);

// In place on a row-major lower-triangular [n, n] L (non-unit diagonal): L^-1, lower.
void invert_lower(double* l, int64_t n);

}  // namespace upg::compress::blas
