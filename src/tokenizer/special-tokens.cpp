#include "tokenizer/special-tokens.h"

#include <algorithm>

namespace upg::tokenizer {

SpecialTokenMatcher::SpecialTokenMatcher(std::vector<LiteralToken> tokens) {
  for (auto& t : tokens)
    if (!t.content.empty()) tokens_.push_back(std::move(t));
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  }
}

void SpecialTokenMatcher::split(std::string_view text, bool parse_special, std::vector<TextSegment>& out) const {
  size_t plain_start = 0, pos = 0;
  while (pos < text.size()) {
    const LiteralToken* hit = nullptr;
    for (uint32_t idx : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const LiteralToken& t = tokens_[idx];
      if (t.special && !parse_special) continue;
      if (text.compare(pos, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (pos > plain_start) out.push_back({text.substr(plain_start, pos - plain_start), -1});
    out.push_back({{}, hit->id});
    pos += hit->content.size();
    plain_start = pos;
  }
  if (plain_start < text.size()) out.push_back({text.substr(plain_start), -1});
}

}  // namespace upg::tokenizer
