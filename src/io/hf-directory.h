#pragma once
// Hugging Face checkpoints: config.json plus safetensors weights (one file or shards
// listed in model.safetensors.index.json), with optional tokenizer and generation
// config files. Tensors stay zero-copy views into the mmaps where alignment allows.
#include <string>

#include "upg/io/io.h"

namespace upg::io {

// A directory holding config.json and model.safetensors or model.safetensors.index.json.
ModelSource load_hf_directory(const std::string& dir, const LoadOptions& opts);

// One .safetensors file; config.json (required) and the tokenizer / generation config
// files (optional) are looked for in the same directory.
ModelSource load_safetensors_model(const std::string& file, const LoadOptions& opts);

}  // namespace upg::io
