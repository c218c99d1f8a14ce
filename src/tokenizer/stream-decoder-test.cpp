#include <gtest/gtest.h>

#include "tokenizer/test-vocab.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

Tokenizer make() {
  auto spec = tokenizer::testing::byte_spec({"<|im_end|>", "\xC3\xB0\xC5\x81"});  // 256, 257 = bytes F0 9F
  spec.token_types.assign(spec.vocab.size(), 1);
  spec.token_types[256] = 3;
  return Tokenizer(spec);
}

TEST(StreamDecoder, HoldsBackAFourByteEmojiSplitAcrossTokens) {
  Tokenizer tok = make();
  StreamDecoder sd(tok);
  EXPECT_EQ(sd.push('H'), "H");
  EXPECT_EQ(sd.push(257), "");  // F0 9F: first half of 👍
  EXPECT_EQ(sd.push(0x91), "");
  EXPECT_EQ(sd.push(0x8D), "\xF0\x9F\x91\x8D");
  EXPECT_EQ(sd.push('!'), "!");
  EXPECT_EQ(sd.flush(), "");
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  Tokenizer tok = make();
  StreamDecoder sd(tok);
  // 0xFF can never start a sequence, so it is replaced at once.
  EXPECT_EQ(sd.push(0xFF), "\xEF\xBF\xBD");
  // A lead byte followed by a non-continuation byte is invalid as soon as that arrives.
  EXPECT_EQ(sd.push(0xE2), "");
  EXPECT_EQ(sd.push('a'), "\xEF\xBF\xBD" "a");
  // A truncated sequence left at the end is one U+FFFD.
  EXPECT_EQ(sd.push(257), "");
  EXPECT_EQ(sd.push(0x91), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(sd.flush(), "");
}

TEST(StreamDecoder, SkipsSpecialTokensUnlessAsked) {
  Tokenizer tok = make();
  StreamDecoder skip(tok);
  EXPECT_EQ(skip.push(256), "");
  StreamDecoder keep(tok, false);
  EXPECT_EQ(keep.push(256), "<|im_end|>");
}

TEST(StreamDecoder, ConcatenationMatchesDecode) {
  Tokenizer tok = make();
  const std::string text = "naïve 中文 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD end";
  const auto ids = tok.encode(text);
  StreamDecoder sd(tok);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  out += sd.flush();
  EXPECT_EQ(out, text);
  EXPECT_EQ(tok.decode(ids), text);
}

}  // namespace
}  // namespace upg
