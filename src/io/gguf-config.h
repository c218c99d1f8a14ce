#pragma once
// ModelConfig from GGUF metadata ({arch}.* keys, plus rope tensors where the converter
// stored rope scaling as a tensor).
#include "io/gguf-reader.h"
#include "upg/core/config.h"

namespace upg::io {

// Throws upg::Error naming the file and key for an unsupported architecture, a missing
// or mistyped key, or rope scaling this engine cannot reproduce.
ModelConfig gguf_model_config(const GgufFile& g);

}  // namespace upg::io
