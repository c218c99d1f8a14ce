#pragma once
// GGUF tensor names -> Hugging Face names, and llama.cpp's Q/K row permutation.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace upg::io {

// The Hugging Face name for a GGUF tensor of architecture `arch` (general.architecture:
// "llama", "qwen2", "phi3"); projections are named by the architecture's layout. Tensors
// that hold rope parameters rather than weights (rope_freqs, rope_factors_*) give
// nullopt; names this table does not know pass through unchanged.
std::optional<std::string> gguf_to_hf_name(std::string_view gguf_name, std::string_view arch);

// llama.cpp's converter reorders each head's Q/K rows for interleaved RoPE:
// GGUF row (h*hd + 2*i + half) holds HF row (h*hd + half*hd/2 + i), hd = rows / n_head.
// Both return, for every output row, the input row it is copied from; throw upg::Error
// when rows is not a multiple of 2 * n_head.
std::vector<int64_t> qk_unpermute_rows(int64_t rows, int64_t n_head);  // GGUF -> HF
std::vector<int64_t> qk_permute_rows(int64_t rows, int64_t n_head);    // HF -> GGUF

}  // namespace upg::io
