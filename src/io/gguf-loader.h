#pragma once
// GGUF model loading: tensors renamed to Hugging Face names (Q/K rows un-permuted for the
// llama architecture, so every layer above sees HF layouts), config and tokenizer from
// the GGUF metadata.
#include <string>

#include "io/mapped-file.h"
#include "upg/io/io.h"

namespace upg::io {

ModelSource load_gguf(const std::string& path, const LoadOptions& opts);
// The same on a file already in memory (MappedFile::from_bytes, for the fuzz harness).
ModelSource load_gguf(std::shared_ptr<const MappedFile> file, const LoadOptions& opts);

}  // namespace upg::io
