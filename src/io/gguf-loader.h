#pragma once
// GGUF model loading: tensors renamed to Hugging Face names (Q/K rows un-permuted for the
// llama architecture, so every layer above sees HF layouts), config and tokenizer from
// the GGUF metadata.
#include <string>

#include "upg/io.h"

namespace upg::io {

ModelSource load_gguf(const std::string& path, const LoadOptions& opts);

}  // namespace upg::io
