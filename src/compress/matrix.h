#pragma once
// One weight matrix through the whole pipeline: prune each row, quantize the survivors,
// encode the layout. Shared by `upg compress` (real weights) and `upg synth` (random).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "compress/prune.h"
#include "compress/quantize.h"
#include "upg/format/format.h"

namespace upg::compress {

struct MatrixOptions {
  Pattern pattern;
  double sparsity = 0.5;  // unstructured only; N:M implies 1 - N/M
  ValueSpec values;
  QuantMethod quant = QuantMethod::Clip;
  uint64_t seed = 0;  // codebook sampling
  int threads = 0;    // <= 0: every core
};

struct MatrixStats {
  double err_sq = 0;  // sum of (W - W_hat)^2 over every element, pruned ones included
  double ref_sq = 0;  // sum of W^2
  int64_t kept = 0;   // surviving weights (before padding)
  double rel_error() const;  // ||W - W_hat||_F / ||W||_F (0 for an all-zero W)
};

// Throws upg::ParamError for options no file can hold: a non-int8/int4 encoding with N:M,
// a sparsity outside [0, 1), unstructured int4 with sparsity > 0 (docs/FORMAT.md 4.3),
// an int4 group size other than 32, 64 or 128 (or not a multiple of M).
void check_matrix_options(const MatrixOptions& o);

// Throws upg::Error naming `name` for a non-finite weight, a shape that the pattern cannot
// take (cols % M), N:M with a non-int8 encoding, or col_norms of the wrong size.
// `col_norms` empty: magnitude pruning; else Wanda with these input-channel norms [cols].
// `reference`, when given, receives W_hat [rows, cols] as the decoder will produce it.
// `original`, when given, is what the stats measure the error against (SparseGPT passes
// its updated weights as `w` and the source's as `original`); else `w`. `grids`, when
// given, are the grids `w` was already rounded onto (GPTQ): int8 one per row [rows], int4
// one per group [rows, cols / group_size]; each weight is stored as its code on its
// grid instead of choosing a grid.
format::CompressedData compress_matrix(std::span<const float> w, int64_t rows, int64_t cols,
                                       std::span<const float> col_norms, const MatrixOptions& opts,
                                       const std::string& name, MatrixStats* stats = nullptr,
                                       std::vector<float>* reference = nullptr,
                                       std::span<const float> original = {},
                                       std::span<const GridParams> grids = {});

// Dense per-row int8 (the embedding / LM head with --embeddings int8):
// weight = scales[r] * qweight[r, c].
struct DenseInt8 {
  std::vector<int8_t> qweight;  // [rows, cols]
  std::vector<float> scales;    // [rows]
};
// `grids` (one per row) and `original` as for compress_matrix.
DenseInt8 quantize_dense_int8(std::span<const float> w, int64_t rows, int64_t cols, QuantMethod q,
                              const std::string& name, MatrixStats* stats = nullptr, int threads = 0,
                              std::span<const GridParams> grids = {}, std::span<const float> original = {});

// Runs f(begin, end) over [0, n) split into contiguous chunks, one per thread.
void parallel_rows(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& f);

// Runs f(i) for i in [0, n), dealt round-robin over the threads: for work that shrinks
// (or grows) with i, where contiguous chunks would leave one thread idle.
void parallel_interleaved(int64_t n, int threads, const std::function<void(int64_t)>& f);

}  // namespace upg::compress
