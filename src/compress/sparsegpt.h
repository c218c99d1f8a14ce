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
#include <vector>

#include "compress/hessian.h"
#include "compress/prune.h"
#include "compress/quantize.h"

namespace upg::compress {

// The paper's defaults: dampening of 1% of the mean diagonal, masks chosen per 128 columns.
inline constexpr double kSparseGptDamp = 0.01;
inline constexpr int64_t kSparseGptBlock = 128;
// How far sparsegpt_target moves towards the source model's outputs. Measured on
// SmolLM2-135M (docs/COMPRESSION.md): half way beat both the full target, which fits the
// calibration text so closely that text unlike it got worse, and none.
inline constexpr double kAsymmetricBlend = 0.5;

class QuantGrid;  // compress/gptq.h

// The sweep of both SparseGPT and GPTQ. Column i's weight becomes q_i (0 when pruned, its
// grid value when a grid is given, else itself) and the columns after it absorb the
// difference: w_j -= (w_i - q_i) / U_ii * U_ij. Within a block of `block` columns the
// updates are applied at once; each block's updates to all later columns are one GEMM at
// its end (GPTQ's lazy batch updates: the same arithmetic, reordered). `order`, when
// given, says which source column each sweep position holds (w and u are already in that
// order): quantization groups are the source's. Returns each group's grid
// [rows, ceil(cols / group_size)] by source group, the last one partial when cols is not
// a multiple (empty without a grid).
struct SweepOptions {
  Pattern pattern;
  double sparsity = 0;  // unstructured; 0: nothing pruned
  const QuantGrid* grid = nullptr;
  std::span<const int64_t> order;
  int64_t block = 128;
  int threads = 0;
};
std::vector<GridParams> obs_sweep(std::span<float> w, int64_t rows, int64_t cols, std::span<const float> u,
                             const SweepOptions& o);

// w [rows, cols] in place: afterwards every row holds exactly round(sparsity * cols)
// zeros at its pruned columns (unstructured: round(sparsity * end) - round(sparsity *
// begin) of each block, so the total matches kept_per_row), or at most N nonzeros per
// group of M (N:M; cols % M must be 0). Ties go to the lower column (kept), as in
// select_row. `u` is inverse_factor(H) [cols, cols]. Throws upg::Error on sizes that
// disagree.
void sparsegpt_prune(std::span<float> w, int64_t rows, int64_t cols, std::span<const float> u, const Pattern& p,
                     double sparsity, int threads = 0, int64_t block = 128);

// Moves w [rows, cols] in place to the weights that best reproduce the source layer's
// outputs from the inputs it now gets: SparseGPT then prunes the result. Each row solves
//   min_v sum_t (w . x_t - v . y_t)^2 + lambda |v - w|^2
// where x_t is the input in the source model and y_t the input in the model pruned so
// far, so v (H + lambda I) = w (C + lambda I) with H = sum y y^T, C = sum x y^T. As
// ||W X - V Y||^2 = ||(W' - V) Y||^2 + const for that W', pruning W' with H's inverse
// factor minimises the error against the source model's outputs, not against the
// layer's outputs on already-damaged inputs (the asymmetric calibration of GPTAQ, Li et
// al. 2025). The ridge pulls towards w, not 0: where the inputs agree (C = H) w stays.
// `u` is inverse_factor(H) and `lambda` the damping it used. `blend` in [0, 1] returns
// blend * W' + (1 - blend) * w: 1 is GPTAQ's full target, 0 plain SparseGPT (see
// kAsymmetricBlend for the value the compressor uses and why).
void sparsegpt_target(std::span<float> w, int64_t rows, int64_t cols, const Hessian& C, double lambda,
                      std::span<const float> u, double blend = 1.0, int threads = 0);

}  // namespace upg::compress
