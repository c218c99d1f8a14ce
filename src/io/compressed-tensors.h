#pragma once
// Hugging Face checkpoints in the compressed-tensors format (the PyPI package that
// llm-compressor writes and vLLM reads): config.json's quantization_config with
// quant_method "compressed-tensors" says how each linear weight is stored. Each is
// turned into the UPG form that holds it exactly (docs/FORMAT.md, "compressed-tensors
// checkpoints"): int4 pack-quantized into dense int4 groups, int8 into dense int8 rows,
// 2:4 and unstructured bitmask-sparse int8 into N:M and MdCSR int8, bitmask-sparse
// floats into dense floats. Anything else is refused naming the tensor and the scheme.
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "upg/io/io.h"

namespace upg::io {

// Rewrites src.weights in place (the compressed parts go; "<module>.weight",
// "<module>.weight.qweight"/".scales" or src.compressed["<module>.weight"] come). A
// config without quantization_config leaves src as it is; another quant_method is
// refused. `origin` names config.json in errors. Without `convert` (inspection: tensors
// as stored) only the config is checked and src.info says which formats it uses.
void apply_compressed_tensors(const nlohmann::json& config, const std::string& origin, ModelSource& src,
                              bool convert = true);

}  // namespace upg::io
