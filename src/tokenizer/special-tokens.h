#pragma once
// Finds special and user-defined tokens written literally in text, so they map straight
// to their ids instead of going through the pre-tokenizer and BPE.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace upg::tokenizer {

struct LiteralToken {
  std::string content;
  int32_t id;
  bool special;  // control token: only matched when parse_special is on
};

struct TextSegment {
  std::string_view text;  // ordinary text when id < 0
  int32_t id;
};

class SpecialTokenMatcher {
 public:
  explicit SpecialTokenMatcher(std::vector<LiteralToken> tokens);  // empty contents are ignored

  // Splits `text` at the leftmost-longest literal token. Non-special tokens are always
  // matched and special ones only with parse_special, as llama.cpp does.
  void split(std::string_view text, bool parse_special, std::vector<TextSegment>& out) const;

 private:
  std::vector<LiteralToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices, longest content first
};

}  // namespace upg::tokenizer
