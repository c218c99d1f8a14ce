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

#include "compress/matrix.h"
#include "upg/format/format.h"
#include "upg/model/model.h"

namespace upg::compress {

struct PrunedTensor {
  format::CompressedData data;
  MatrixStats stats;  // against the source weights
};

// `model` must hold the source weights as fp32 (LoadOptions::dequant_to = F32); its
// pruned layers are swapped in as it goes (Model::replace_weight), so it is spent
// afterwards. For each layer: run it with its dense weights on the source stream,
// recording each group's source inputs; for each group, run the layer on the pruned
// stream to collect its Hessian and cross term, then target, SparseGPT-prune and quantize
// its weights (mo) and swap in the decoded result; finally run the layer to produce the
// next layer's input. Memory: three [tokens, hidden] streams, one layer's source inputs
// and one group's Hessian and cross term (sparsegpt_memory_bytes). `progress(layer)` is
// called after each layer.
std::map<std::string, PrunedTensor, std::less<>> sparsegpt_layerwise(
    Model& model, const std::vector<int32_t>& tokens, const MatrixOptions& mo,
    const std::function<bool(const std::string&)>& prune, int chunk = 512,
    const std::function<void(int)>& progress = {});

}  // namespace upg::compress
