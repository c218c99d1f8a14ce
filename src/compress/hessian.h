#pragma once
// Second-order statistics of one linear layer's input, for SparseGPT: H = sum_t x_t x_t^T
// over the calibration tokens, and the factor of its (damped) inverse that the pruning
// sweep reads row by row.
#include <cstdint>
#include <vector>

namespace upg::compress {

struct Hessian {
  int64_t cols = 0;
  int64_t tokens = 0;
  // [cols, cols] row-major. accumulate_hessian fills the upper triangle only (j >= i);
  // symmetrize() mirrors it once accumulation is over.
  std::vector<float> h;
};

Hessian make_hessian(int64_t cols);

// h += x^T x for x [n, cols] (upper triangle; BLAS ssyrk, fp32 like the activations),
// on `threads` threads (<= 0: every core).
void accumulate_hessian(Hessian& H, const float* x, int64_t n, int threads = 0);

// C += target^T x for target, x [n, cols] (all of C): the cross term between what a
// layer's input was in the source model (`target`) and what it is in the model as
// pruned so far (`x`); see sparsegpt_target.
void accumulate_cross(Hessian& C, const float* target, const float* x, int64_t n, int threads = 0);

// Copies the upper triangle onto the lower one.
void symmetrize(Hessian& H);

// The upper-triangular U with U^T U = (H + lambda I)^-1, lambda = damp * mean(diag H)
// (SparseGPT's dampening; 1% by default), as fp32 [cols, cols] row-major with zeros below
// the diagonal. An input column that never fired (H_ii == 0) gets H_ii = 1 so the matrix
// stays positive definite; its weights then carry no information the loss could use.
// Computed in double (LAPACK dpotrf and dtrtri: fp32 loses the small pivots of a
// near-singular H): Cholesky of the reversed matrix, then its triangular inverse,
// reversed back (the reversal turns the lower inverse factor into the upper one). When H
// is not positive definite after damping (rounding on a rank-deficient H), lambda grows
// tenfold and the factorisation is retried; `lambda_used` receives the lambda that
// worked. Throws upg::Error if it still fails.
std::vector<float> inverse_factor(const Hessian& H, double damp = 0.01, int threads = 0,
                                  double* lambda_used = nullptr);

}  // namespace upg::compress
