#pragma once
// Test helper: a small byte-level vocab (all 256 byte tokens first, then extras), so unit
// tests can build real Tokenizers without a model file.
#include <string>
#include <vector>

#include "upg/tokenizer/byte-level.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::tokenizer::testing {

inline TokenizerSpec byte_spec(const std::vector<std::string>& extra_tokens = {},
                               const std::vector<std::string>& merges = {}) {
  TokenizerSpec s;
  for (int b = 0; b < 256; ++b) s.vocab.push_back(bytes_to_byte_level(std::string(1, static_cast<char>(b))));
  for (const auto& t : extra_tokens) s.vocab.push_back(t);
  s.merges = merges;
  s.pre_tokenizer = "gpt2";
  return s;
}

// Id of a single raw byte in byte_spec().
inline int32_t byte_id(unsigned char b) { return b; }

}  // namespace upg::tokenizer::testing
