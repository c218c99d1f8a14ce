#pragma once
// A small byte-level BPE vocabulary for the grammar tests: the 256 bytes, a few
// multi-byte tokens that cross grammar boundaries, and a special end token.
#include <string>
#include <vector>

#include "upg/tokenizer/byte-level.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::grammar_test {

inline const std::vector<std::string>& extra_tokens() {
  static const std::vector<std::string> t = {"{\"", "\":", "\",\"", "true", "tr", "ue}", "ab", "ba", "aa",
                                             "12", "3.", "\"}", "null", "[1", ",2]", " ", "  ", "\n",
                                             // within a string, then past its end: the first may continue
                                             // a key, the others not
                                             "b\":", "a\"b", "ab\n"};
  return t;
}

// Ids: 0..255 the bytes, then extra_tokens(), then the end token (last id).
inline Tokenizer tiny_tokenizer() {
  TokenizerSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.push_back(tokenizer::bytes_to_byte_level(std::string(1, char(b))));
  for (const auto& t : extra_tokens()) spec.vocab.push_back(tokenizer::bytes_to_byte_level(t));
  spec.vocab.push_back("<|end|>");
  const int32_t end = int32_t(spec.vocab.size()) - 1;
  spec.added_tokens.push_back({end, "<|end|>", true});
  spec.eos_id = end;
  spec.pre_tokenizer = "gpt2";
  return Tokenizer(spec);
}

}  // namespace upg::grammar_test
