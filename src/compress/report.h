#pragma once
// The table `upg compress` and `upg synth` print at the end: bytes per original weight,
// compression ratios and reconstruction error, per tensor kind (or per tensor) and total.
#include <cstdint>
#include <string>
#include <vector>

namespace upg::compress {

struct TensorReport {
  std::string name;
  std::string layout;   // "mdcsr", "nm", "dense", "int8-dense"
  int rank = 2;
  int64_t weights = 0;  // original element count
  uint64_t bytes = 0;   // bytes stored for this tensor (all parts)
  double err_sq = 0;    // sum (W - W_hat)^2
  double ref_sq = 0;    // sum W^2
  int64_t kept = 0;     // surviving weights (compressed tensors)
  std::string setting;  // --target-bpw: the setting chosen for it (compress/bit-budget.h)
};

struct CompressReport {
  std::vector<TensorReport> tensors;
  uint64_t source_bytes = 0;  // size of the source file(s); 0 for synth
  uint64_t output_bytes = 0;  // size of the written UPG file
  double seconds = 0;
};

// The tensor's kind for aggregation: "q_proj", "down_proj", ..., "embed_tokens",
// "lm_head", "norm" (every 1-D tensor), or "other".
std::string tensor_kind(const std::string& name, int64_t rank);

// The table as text. per_tensor: one row per tensor instead of one per kind.
std::string format_report(const CompressReport& r, bool per_tensor);

}  // namespace upg::compress
