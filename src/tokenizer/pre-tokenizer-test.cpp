#include "tokenizer/pre-tokenizer.h"

#include <gtest/gtest.h>

#include "upg/core/error.h"

namespace upg::tokenizer {
namespace {

std::vector<std::string> split(std::string_view preset, std::string_view text) {
  PreTokenizer pre(pre_tokenizer_preset(preset).regexes);
  std::vector<std::string_view> pieces;
  pre.split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

using V = std::vector<std::string>;

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split("gpt2", "Hello  world's 123!!"), (V{"Hello", " ", " world", "'s", " 123", "!!"}));
  EXPECT_EQ(split("gpt2", "a\n\n b"), (V{"a", "\n\n", " b"}));
  EXPECT_EQ(split("gpt2", "x   "), (V{"x", "   "}));
}

TEST(PreTokenizer, SmollmIsolatesDigitsFirst) {
  // The digit pass runs first, so the space before a number stands alone.
  EXPECT_EQ(split("smollm", "abc 123"), (V{"abc", " ", "1", "2", "3"}));
  EXPECT_EQ(split("smollm", "3.14"), (V{"3", ".", "1", "4"}));
  EXPECT_EQ(split("smollm", "x²"), (V{"x", "²"}));  // superscripts are \p{N}
}

TEST(PreTokenizer, Llama3AndQwen2Numbers) {
  EXPECT_EQ(split("llama-bpe", "12345 I'M here"), (V{"123", "45", " I", "'M", " here"}));
  EXPECT_EQ(split("qwen2", "12345"), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split("llama3", "a\r\n\r\nb"), (V{"a", "\r\n\r\n", "b"}));
  EXPECT_EQ(split("qwen2", "(x)"), (V{"(x", ")"}));
}

TEST(PreTokenizer, Gpt4oSplitsCaseBoundaries) {
  EXPECT_EQ(split("gpt-4o", "HelloWorld"), (V{"Hello", "World"}));
}

TEST(PreTokenizer, UnicodeProperties) {
  EXPECT_EQ(split("gpt2", "日本語 한국어"), (V{"日本語", " 한국어"}));
  EXPECT_EQ(split("gpt2", "Crème brûlée"), (V{"Crème", " brûlée"}));
}

TEST(PreTokenizer, InvalidUtf8IsKeptNotDropped) {
  const std::string text = "ab\xFF\xFE cd\x80";
  std::string joined;
  for (const auto& p : split("gpt2", text)) joined += p;
  EXPECT_EQ(joined, text);
}

TEST(PreTokenizer, PiecesAlwaysCoverTheText) {
  const std::string text = "  mixed 12 text\t\twith\r\n  \xF0\x9F\x91\x8D emoji's and 中文3.5  ";
  for (const char* preset : {"gpt2", "smollm", "llama-bpe", "qwen2", "dbrx", "gpt-4o"}) {
    std::string joined;
    for (const auto& p : split(preset, text)) {
      EXPECT_FALSE(p.empty()) << preset;
      joined += p;
    }
    EXPECT_EQ(joined, text) << preset;
  }
}

TEST(PreTokenizer, Errors) {
  try {
    pre_tokenizer_preset("chameleon");
    FAIL() << "expected upg::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'chameleon'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PreTokenizer({"(unclosed"}), Error);
}

}  // namespace
}  // namespace upg::tokenizer
