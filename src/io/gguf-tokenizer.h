#pragma once
// TokenizerSpec from GGUF tokenizer.ggml.* metadata.
#include <optional>

#include "io/gguf-reader.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::io {

// nullopt when the file has no tokenizer.ggml.model key; throws upg::Error for a tokenizer
// model other than "gpt2" (byte-level BPE) or inconsistent token arrays/ids.
std::optional<TokenizerSpec> gguf_tokenizer_spec(const GgufFile& g);

}  // namespace upg::io
