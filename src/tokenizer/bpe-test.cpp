#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

#include "tokenizer/test-vocab.h"
#include "upg/core/error.h"

namespace upg::tokenizer {
namespace {

using testing::byte_spec;

// Ids of extra tokens in byte_spec() start at 256.
constexpr int32_t kExtra = 256;

TEST(Bpe, MergesApplyByRankNotByPosition) {
  // "b c" outranks "a b", so "abc" becomes a + bc even though "ab" comes first.
  auto s = byte_spec({"bc", "ab", "abc"}, {"b c", "a b", "ab c"});
  BpeModel bpe(s.vocab, s.merges, -1, false);
  std::vector<int32_t> ids;
  bpe.encode_piece("abc", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{'a', kExtra + 0}));
  ids.clear();
  bpe.encode_piece("abx", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{kExtra + 1, 'x'}));
}

TEST(Bpe, RepeatedPairsMergeLeftToRight) {
  auto s = byte_spec({"aa", "aaaa"}, {"a a", "aa aa"});
  BpeModel bpe(s.vocab, s.merges, -1, false);
  std::vector<int32_t> ids;
  bpe.encode_piece("aaa", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{kExtra, 'a'}));
  ids.clear();
  bpe.encode_piece("aaaaa", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{kExtra + 1, 'a'}));
  ids.clear();
  bpe.encode_piece("aaaaa", ids);  // cached path gives the same answer
  EXPECT_EQ(ids, (std::vector<int32_t>{kExtra + 1, 'a'}));
}

TEST(Bpe, ByteLevelSpaceMerges) {
  auto s = byte_spec({"\xC4\xA0h", "\xC4\xA0hi"}, {"\xC4\xA0 h", "\xC4\xA0h i"});
  BpeModel bpe(s.vocab, s.merges, -1, false);
  std::vector<int32_t> ids;
  bpe.encode_piece(" hi", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{kExtra + 1}));
}

TEST(Bpe, IgnoreMergesTakesWholeWords) {
  // "abc" is in the vocab but no merge path reaches it.
  auto s = byte_spec({"abc", "ab"}, {"a b"});
  std::vector<int32_t> ids;
  BpeModel(s.vocab, s.merges, -1, false).encode_piece("abc", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{kExtra + 1, 'c'}));
  ids.clear();
  BpeModel(s.vocab, s.merges, -1, true).encode_piece("abc", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{kExtra}));
}

TEST(Bpe, MissingByteTokenBecomesUnkOrIsDropped) {
  std::vector<std::string> vocab = {"<unk>", "a", "b"};
  std::vector<int32_t> ids;
  BpeModel(vocab, {}, 0, false).encode_piece("a\x01" "b", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 0, 2}));
  ids.clear();
  BpeModel(vocab, {}, -1, false).encode_piece("a\x01" "b", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2}));
}

TEST(Bpe, RejectsMergesOutsideTheVocab) {
  auto s = byte_spec({"ab"}, {"a b", "ab c"});
  try {
    BpeModel(s.vocab, s.merges, -1, false);
    FAIL() << "expected upg::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merges[1]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'abc'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BpeModel(s.vocab, {"ab"}, -1, false), Error);
  EXPECT_THROW(BpeModel(s.vocab, {"a "}, -1, false), Error);
}

TEST(Bpe, LongPieceIsFast) {
  // A long run exercises the heap merge (quadratic loops take seconds here).
  auto s = byte_spec({"\xC4\xA0\xC4\xA0", "\xC4\xA0\xC4\xA0\xC4\xA0\xC4\xA0"}, {"\xC4\xA0 \xC4\xA0", "\xC4\xA0\xC4\xA0 \xC4\xA0\xC4\xA0"});
  BpeModel bpe(s.vocab, s.merges, -1, false);
  std::vector<int32_t> ids;
  bpe.encode_piece(std::string(200001, ' '), ids);
  ASSERT_EQ(ids.size(), 50001u);
  EXPECT_EQ(ids.front(), kExtra + 1);
  EXPECT_EQ(ids.back(), ' ');
}

}  // namespace
}  // namespace upg::tokenizer
