#include "upg/tokenizer/byte-level.h"

#include <gtest/gtest.h>

#include <set>

#include "upg/core/utf8.h"

namespace upg::tokenizer {
namespace {

TEST(ByteLevel, KnownGpt2Mappings) {
  EXPECT_EQ(bytes_to_byte_level(" "), "\xC4\xA0");   // Ġ
  EXPECT_EQ(bytes_to_byte_level("\n"), "\xC4\x8A");  // Ċ
  EXPECT_EQ(bytes_to_byte_level("\t"), "\xC4\x89");  // ĉ
  EXPECT_EQ(bytes_to_byte_level("Hi!"), "Hi!");
  EXPECT_EQ(byte_to_codepoint(0x00), 0x100u);
  EXPECT_EQ(byte_to_codepoint(0xAD), 0x143u);  // the soft hyphen is the last moved byte
  EXPECT_EQ(byte_to_codepoint(0xE9), 0xE9u);
}

TEST(ByteLevel, MappingIsABijectionOnAllBytes) {
  std::set<uint32_t> seen;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = byte_to_codepoint(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(cp).second) << "byte " << b;
    ASSERT_TRUE(codepoint_to_byte(cp).has_value()) << "byte " << b;
    EXPECT_EQ(*codepoint_to_byte(cp), b);
    all += static_cast<char>(b);
  }
  EXPECT_EQ(byte_level_to_bytes(bytes_to_byte_level(all)), all);
}

TEST(ByteLevel, RoundTripsUtf8AndInvalidBytes) {
  for (std::string s : {std::string("héllo 中文 👍🏽"), std::string("\xFF\xFE\x80 bad"), std::string("a\0b", 3)}) {
    const std::string mapped = bytes_to_byte_level(s);
    // The mapped form is always valid UTF-8, even for invalid input.
    for (size_t pos = 0; pos < mapped.size();) {
      const Utf8Seq seq = next_utf8(mapped, pos);
      ASSERT_EQ(seq.kind, Utf8Seq::kValid);
      pos += seq.len;
    }
    EXPECT_EQ(byte_level_to_bytes(mapped), s);
  }
}

TEST(ByteLevel, UnmappedCodePointsPassThrough) {
  // "€" (U+20AC) is not one of the 256 stand-ins; it decodes to its own UTF-8 bytes.
  EXPECT_EQ(byte_level_to_bytes("\xE2\x82\xAC" "a"), "\xE2\x82\xAC" "a");
  EXPECT_EQ(codepoint_to_byte(0x20AC), std::nullopt);
  EXPECT_EQ(codepoint_to_byte(0x20), std::nullopt);  // raw space is moved, not identity
}

TEST(Utf8, StrictValidation) {
  EXPECT_EQ(next_utf8("\xC0\xAF", 0).kind, Utf8Seq::kInvalid);          // overlong
  EXPECT_EQ(next_utf8("\xED\xA0\x80", 0).kind, Utf8Seq::kInvalid);      // surrogate
  EXPECT_EQ(next_utf8("\xF4\x90\x80\x80", 0).kind, Utf8Seq::kInvalid);  // > U+10FFFF
  EXPECT_EQ(next_utf8("\xF0\x9F\x91", 0).kind, Utf8Seq::kIncomplete);
  const Utf8Seq ok = next_utf8("\xF0\x9F\x91\x8D", 0);
  EXPECT_EQ(ok.kind, Utf8Seq::kValid);
  EXPECT_EQ(ok.cp, 0x1F44Du);
  std::string enc;
  append_utf8(enc, 0x1F44D);
  EXPECT_EQ(enc, "\xF0\x9F\x91\x8D");
}

}  // namespace
}  // namespace upg::tokenizer
