#pragma once
// SparseGPT group by group, with a half-way asymmetric target (docs/COMPRESSION.md): the
// matmuls of each decoder layer that share an input (q, k, v; o; gate, up; down) are
// calibrated in turn on the model with everything before them already pruned, and each
// weight is first moved towards reproducing the source model's outputs, so a group also
// makes up for the error the pruned groups before it left.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/bit-budget.h"
#include "compress/matrix.h"
#include "upg/format/format.h"
#include "upg/model/model.h"

namespace upg::compress {

struct PrunedTensor {
  format::CompressedData data;  // the pruned (sparse) form
  DenseInt8 dense;              // LayerwiseOptions::dense: the dense int8 form instead
  MatrixStats stats;            // against the source weights
};

// How each weight is swept (compress/gptq.h).
struct LayerwiseOptions {
  // Round the kept weights onto the values' grid (int8 per row or int4 per group) in the
  // pruning's sweep (GPTQ), so rounding errors are compensated like pruned weights; else
  // round them afterwards.
  bool gptq = false;
  bool act_order = false;  // GPTQ's activation order (GptqOptions::act_order)
  // Nothing pruned: every weight dense int8 through GPTQ (needs gptq).
  bool dense = false;
  // When set, this LM head weight too (the embedding of a tied model) through GPTQ on the
  // grid of `head_options` (dense), its Hessian from the final norm of the compressed
  // model's residual stream: the logits' error is what it minimises.
  std::string head;
  MatrixOptions head_options;
  // When set, each decoder weight's own setting (--target-bpw) instead of `mo` and
  // `dense`; activation order stays off for its N:M settings.
  std::function<Setting(const std::string&)> setting_for;
  // When set, receives the output rows the passes' products computed (tokens x rows,
  // LayerMatmuls::computed): what the passes cost, for the tests.
  int64_t* computed_rows = nullptr;
};

// `model` must hold the source weights as fp32 (LoadOptions::dequant_to = F32); its
// pruned layers are swapped in as it goes (Model::replace_weight), so it is spent
// afterwards. For each layer: run it with its dense weights on the source stream,
// recording each group's source inputs; for each group, run the layer on the pruned
// stream to collect its Hessian and cross term, then target, SparseGPT-prune and quantize
// its weights (mo, lo) and swap in the decoded result; finally run the layer to produce
// the next layer's input. A group's pass stops at its own matmuls (the rest of the layer
// would be discarded); products run in OpenBLAS, each once per weight and pass kind
// (LayerMatmuls). Memory: three [tokens, hidden] streams, one layer's source inputs, one
// group's input in the compressed model, the layer's kept outputs, and the group's
// Hessian and cross term (sparsegpt_memory_bytes). `progress(layer)` is called after each layer (and once more,
// with num_layers, after the LM head when lo.head is set).
std::map<std::string, PrunedTensor, std::less<>> sparsegpt_layerwise(
    Model& model, const std::vector<int32_t>& tokens, const MatrixOptions& mo,
    const std::function<bool(const std::string&)>& prune, int chunk = 512,
    const std::function<void(int)>& progress = {}, const LayerwiseOptions& lo = {});

}  // namespace upg::compress
