#pragma once
// Mixed precision for a size budget (`upg compress --target-bpw B`, docs/COMPRESSION.md):
// every setting of a small ladder is tried on every tensor (rounded to nearest), its
// stored bytes and its error measured, and one setting per tensor is chosen so that the
// tensors fit the budget with the least total error.
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "compress/calibrate.h"
#include "compress/matrix.h"
#include "upg/core/tensor.h"

namespace upg::compress {

// One way to store a matrix: `matrix` for compress_matrix, or per-row int8 stored dense
// (W.qweight and W.scales, as --dense-int8 stores it) when dense_int8 is set.
struct Setting {
  std::string name;  // "int8", "int4-g32-zp", "2:4-int4-g64-zp", ...
  MatrixOptions matrix;
  bool dense_int8 = false;
};

// The decoder linears' ladder: dense int8 per row; dense int4 with zero points in groups
// of 32, 64 and 128; 2:4 int4 in groups of 64 with zero points; dense int3 with zero
// points in groups of 32, 64 and 128; dense int2 with zero points in groups of 32 and 64.
// `quant` and `threads` come from `base`.
std::vector<Setting> linear_ladder(const MatrixOptions& base);
// The embedding / LM head's: dense int8 per row, or int4 in groups of 32 with zero points
// (embedding_int4_options).
std::vector<Setting> embedding_ladder(const MatrixOptions& base);

struct Candidate {
  uint64_t bytes = 0;  // stored bytes of every part
  double error = 0;    // relative squared output error (measure_setting)
};

// `setting` applied to w [rows, cols]: its bytes, and
//   sum_rc (W - W_hat)_rc^2 n_c^2 / sum_rc W_rc^2 n_c^2
// with n the input channels' activation norms over the calibration text (`col_norms`;
// empty: all 1, the relative squared weight error). That is the layer's relative squared
// output error when input channels are uncorrelated (the diagonal of the Hessian), as
// cheap as rounding. N:M settings prune by Wanda with the norms, by magnitude without.
Candidate measure_setting(std::span<const float> w, int64_t rows, int64_t cols, std::span<const float> col_norms,
                          const Setting& setting, const std::string& name);

// One setting per tensor: the choice (an index into the tensor's candidates) with the
// least total error whose bytes sum to at most `budget`. Exact for bytes counted in units
// of 1/65536 of the whole range the choices span (each cost rounded up, so the true sum
// never exceeds the budget); a larger budget never gives a larger total error. Returns
// an empty vector when even the cheapest choices exceed the budget.
std::vector<int> choose_settings(const std::vector<std::vector<Candidate>>& candidates, uint64_t budget);

// A tensor the budget decides: a decoder linear (linear_ladder) or the embedding / LM
// head (embedding_ladder). `weight` multiplies its error in the total
// (kTiedEmbeddingErrorFactor for the embedding of a tied model).
struct PlanTensor {
  std::string name;
  TensorView view;
  bool embedding = false;
  double weight = 1;
};

struct BudgetPlan {
  double target_bpw = 0;
  uint64_t budget = 0;     // bytes the planned tensors may take (the rest is fixed)
  uint64_t bytes = 0;      // bytes they take as rounded to nearest
  double total_error = 0;  // sum of the chosen settings' weighted errors
  bool calibrated = false; // errors weighted by activation norms (else weight errors)
  std::map<std::string, Setting, std::less<>> settings;     // tensor -> its setting
  std::map<std::string, Candidate, std::less<>> measured;  // tensor -> its chosen setting's bytes, error
};

// The factor on an N:M setting's measured error in the choice. Measured against the files'
// perplexity, the per-channel measure understates what pruning costs next to rounding:
// without it the 0.60 bytes/weight file of the default model took 2:4 for four tensors
// whose measured error was below other tensors' int4 g32, and scored KJV 9.22 against
// 8.37 for uniform int4 g64 at 0.574 (docs/COMPRESSION.md). With it, 2:4 goes where a
// budget cannot be met otherwise, on the tensors it damages least.
inline constexpr double kNmErrorFactor = 8.0;
// The factor on the embedding's error when the model is tied: it is also the LM head.
inline constexpr double kTiedEmbeddingErrorFactor = 2.0;

// Measures every ladder setting on every tensor (errors weighted by `cal`'s activation
// norms where it has them; N:M ones times kNmErrorFactor), then chooses (choose_settings) so that `fixed_bytes` (the
// rest of the file) plus the tensors' bytes stay within target_bpw * total_weights.
// Throws upg::ParamError("target_bpw") naming the smallest reachable bytes per weight when
// the cheapest settings do not fit. `progress(done, total, name)` after each tensor.
BudgetPlan plan_budget(const std::vector<PlanTensor>& tensors, const Calibration* cal, const MatrixOptions& base,
                       double target_bpw, uint64_t fixed_bytes, int64_t total_weights,
                       const std::function<void(int, int, const std::string&)>& progress = {});

}  // namespace upg::compress
