#pragma once
// SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
// Pruned in One-Shot", 2023): prune a weight matrix while updating the weights that stay,
// so the layer's output on the calibration inputs moves as little as possible.
//
// Every row is independent. Columns are visited left to right; when column i is pruned,
// its weight w_i becomes 0 and the weights to its right absorb the error through the
// inverse Hessian: w_j -= (w_i / U_ii) U_ij for j > i, with U^T U = H^-1 (inverse_factor).
// Which columns go is decided per block of `block` columns (unstructured) or per group of
// M (N:M) from the already-updated weights, by the OBS saliency (w_j / U_jj)^2.
#include <cstdint>
#include <span>

#include "compress/prune.h"

namespace upg::compress {

// The paper's defaults: dampening of 1% of the mean diagonal, masks chosen per 128 columns.
inline constexpr double kSparseGptDamp = 0.01;
inline constexpr int64_t kSparseGptBlock = 128;

// w [rows, cols] in place: afterwards every row holds exactly round(sparsity * cols)
// zeros at its pruned columns (unstructured: round(sparsity * end) - round(sparsity *
// begin) of each block, so the total matches kept_per_row), or at most N nonzeros per
// group of M (N:M; cols % M must be 0). Ties go to the lower column (kept), as in
// select_row. `u` is inverse_factor(H) [cols, cols]. Throws upg::Error on sizes that
// disagree.
void sparsegpt_prune(std::span<float> w, int64_t rows, int64_t cols, std::span<const float> u, const Pattern& p,
                     double sparsity, int threads = 0, int64_t block = 128);

}  // namespace upg::compress
