#pragma once
// Hugging Face checkpoints: config.json plus safetensors weights (one file or shards
// listed in model.safetensors.index.json), with optional tokenizer and generation
// config files. Tensors stay zero-copy views into the mmaps where alignment allows.
#include <string>

#include "io/safetensors-reader.h"
#include "upg/io/io.h"

namespace upg::io {

// Moves a safetensors file's tensors into the store, which keeps the mapping alive (its
// pages droppable once copied). Views whose address is not a multiple of the element
// size (possible when a writer did not order tensors by alignment) are copied, so typed
// access above stays defined.
void add_tensors(SafetensorsFile&& st, WeightStore& store);

// A directory holding config.json and model.safetensors or model.safetensors.index.json.
ModelSource load_hf_directory(const std::string& dir, const LoadOptions& opts);

// One .safetensors file; config.json (required) and the tokenizer / generation config
// files (optional) are looked for in the same directory.
ModelSource load_safetensors_model(const std::string& file, const LoadOptions& opts);

}  // namespace upg::io
