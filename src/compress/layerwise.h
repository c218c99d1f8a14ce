#pragma once
// SparseGPT layer by layer (the paper's sequential mode): each decoder layer is
// calibrated on the outputs of the layers before it as already pruned, so a layer's
// weight update also makes up for the error the earlier layers left.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/matrix.h"
#include "upg/format.h"
#include "upg/model.h"

namespace upg::compress {

struct PrunedTensor {
  format::CompressedData data;
  MatrixStats stats;  // against the source weights
};

// `model` must hold the source weights as fp32 (LoadOptions::dequant_to = F32); its
// pruned layers are swapped in as it goes (Model::replace_weight), so it is spent
// afterwards. For each layer: run it on the calibration stream with its dense weights,
// collecting the input Hessians of the tensors `prune` accepts; SparseGPT-prune and
// quantize them (mo); swap in the decoded result; run the layer again to produce the next
// layer's input. Memory: the stream twice ([tokens, hidden] floats) and one layer's
// Hessians. `progress(layer)` is called after each layer.
std::map<std::string, PrunedTensor, std::less<>> sparsegpt_layerwise(
    Model& model, const std::vector<int32_t>& tokens, const MatrixOptions& mo,
    const std::function<bool(const std::string&)>& prune, int chunk = 512,
    const std::function<void(int)>& progress = {});

}  // namespace upg::compress
