#pragma once
// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers", 2023): round a weight matrix onto a quantization grid column
// by column, each column's rounding error compensated by the columns not yet rounded
// through the inverse Hessian of the layer's inputs, exactly as SparseGPT compensates a
// pruned weight. Both run in one sweep (sparsegpt.h, obs_sweep), so pruning and rounding
// are compensated together when both are asked for.
//
// The grid is an interface: the sweep asks it for a group's scale (and zero point) when it
// reaches the group, then for each weight's code and decoded value. Two implementations:
// the int8 per-row grid and the int4 group grid (a scale per 32-128 columns) of the UPG
// format.
#include <cstdint>
#include <span>
#include <vector>

#include "compress/hessian.h"
#include "compress/prune.h"
#include "compress/quantize.h"

namespace upg::compress {

class QuantGrid {
 public:
  virtual ~QuantGrid() = default;
  // Columns sharing one scale in a row of `cols` (cols itself for one scale per row).
  virtual int64_t group_size(int64_t cols) const = 0;
  // The grid for a group's weights: the kept ones, as they stand when the sweep reaches
  // the group's first column (in sweep order).
  virtual GridParams choose(std::span<const float> w) const = 0;
  virtual int32_t code(float w, const GridParams& g) const = 0;
  // What `code` decodes to, bit for bit as the file's decoder computes it.
  virtual float value(int32_t code, const GridParams& g) const = 0;
};

// The UPG int8 grid: one scale per row (absmax or the clip search of quantize_int8),
// codes in [-127, 127].
class Int8RowGrid final : public QuantGrid {
 public:
  explicit Int8RowGrid(QuantMethod method) : method_(method) {}
  int64_t group_size(int64_t cols) const override { return cols; }
  GridParams choose(std::span<const float> w) const override;
  int32_t code(float w, const GridParams& g) const override;
  float value(int32_t code, const GridParams& g) const override;

 private:
  QuantMethod method_;
};

// The UPG grouped grid (docs/FORMAT.md 4.3) of `bits` bits (4, 3 or 2): an fp16 step per
// `group` columns, symmetric (zero 2^(bits-1)) or with a zero point, chosen by
// int4_group; codes 0 .. 2^bits - 1.
class Int4GroupGrid final : public QuantGrid {
 public:
  Int4GroupGrid(int group, bool zero_point, QuantMethod method, int bits = 4)
      : group_(group), zero_point_(zero_point), method_(method), bits_(bits) {}
  int64_t group_size(int64_t) const override { return group_; }
  GridParams choose(std::span<const float> w) const override;
  int32_t code(float w, const GridParams& g) const override;
  float value(int32_t code, const GridParams& g) const override;

 private:
  int group_;
  bool zero_point_;
  QuantMethod method_;
  int bits_;
};

struct GptqOptions {
  // Pruning in the same sweep (SparseGPT's masks): none for unstructured at sparsity 0.
  Pattern pattern;
  double sparsity = 0;
  const QuantGrid* grid = nullptr;  // null: prune only (plain SparseGPT)
  // Columns in decreasing order of H's diagonal (the inputs with the most energy first,
  // GPTQ's "act-order"), so the columns rounded last, whose error nothing is left to
  // absorb, are the least important. Unstructured pruning only (N:M groups are adjacent
  // columns).
  bool act_order = false;
  double damp = 0.01;
  int64_t block = 128;
  int threads = 0;
};

// w [rows, cols] in place: pruned weights 0, the others on the grid (the decoded values),
// compensated through H (symmetric, H.cols == cols). `u` is inverse_factor(H, damp) when
// the caller has it (reused without act-order), else empty. Returns the grid of each
// group [rows, ceil(cols / group_size)] (empty without a grid). Throws upg::Error on sizes that
// disagree, ParamError("act_order") with an N:M pattern.
std::vector<GridParams> gptq_sweep(std::span<float> w, int64_t rows, int64_t cols, const Hessian& H,
                              std::span<const float> u, const GptqOptions& o);

}  // namespace upg::compress
