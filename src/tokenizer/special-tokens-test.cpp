#include "tokenizer/special-tokens.h"

#include <gtest/gtest.h>

#include "tokenizer/test-vocab.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::tokenizer {
namespace {

std::vector<std::pair<std::string, int32_t>> segments(const SpecialTokenMatcher& m, std::string_view text,
                                                      bool parse_special) {
  std::vector<TextSegment> segs;
  m.split(text, parse_special, segs);
  std::vector<std::pair<std::string, int32_t>> out;
  for (const auto& s : segs) out.emplace_back(std::string(s.text), s.id);
  return out;
}

using Segs = std::vector<std::pair<std::string, int32_t>>;

TEST(SpecialTokens, LongestMatchFirst) {
  SpecialTokenMatcher m({{"<|a|>", 1, true}, {"<|a|>b", 2, true}, {"<", 3, false}});
  EXPECT_EQ(segments(m, "x<|a|>by<|a|>", true), (Segs{{"x", -1}, {"", 2}, {"y", -1}, {"", 1}}));
  // A lone "<" is a (non-special) literal too.
  EXPECT_EQ(segments(m, "<b", true), (Segs{{"", 3}, {"b", -1}}));
}

TEST(SpecialTokens, ParseSpecialOffKeepsUserDefinedTokens) {
  SpecialTokenMatcher m({{"<|im_start|>", 1, true}, {"<tool>", 7, false}});
  EXPECT_EQ(segments(m, "<|im_start|><tool>", false), (Segs{{"<|im_start|>", -1}, {"", 7}}));
  EXPECT_EQ(segments(m, "<|im_start|><tool>", true), (Segs{{"", 1}, {"", 7}}));
  EXPECT_EQ(segments(m, "", true), Segs{});
}

TEST(SpecialTokens, TokenizerEncodesLiteralsDirectly) {
  auto spec = testing::byte_spec({"<|im_start|>", "<|im_end|>", "<user>"});
  spec.token_types.assign(spec.vocab.size(), 1);
  spec.token_types[256] = 3;
  spec.token_types[257] = 3;
  spec.token_types[258] = 4;
  Tokenizer tok(spec);
  EXPECT_EQ(tok.encode("<|im_start|>hi<|im_end|>"), (std::vector<int32_t>{256, 'h', 'i', 257}));
  // Without parse_special the control token is ordinary text, the user-defined one is not.
  const auto plain = tok.encode("<|im_end|><user>", false, false);
  EXPECT_EQ(plain.size(), 11u);
  EXPECT_EQ(plain.back(), 258);
  EXPECT_TRUE(tok.is_special(256));
  EXPECT_FALSE(tok.is_special(258));
  EXPECT_EQ(tok.decode({256, 'h', 258}, false), "<|im_start|>h<user>");
  EXPECT_EQ(tok.decode({256, 'h', 258}, true), "h<user>");
}

}  // namespace
}  // namespace upg::tokenizer
