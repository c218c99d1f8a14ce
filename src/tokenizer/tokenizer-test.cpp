#include <gtest/gtest.h>

#include <thread>

#include "tokenizer/test-vocab.h"
#include "upg/core/error.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

using tokenizer::testing::byte_spec;

TEST(Tokenizer, Accessors) {
  auto spec = byte_spec({"\xC4\xA0the", "<s>"}, {});
  spec.bos_id = 257;
  spec.add_bos = true;
  Tokenizer tok(spec);
  EXPECT_EQ(tok.vocab_size(), 258);
  EXPECT_EQ(tok.token_text(256), "\xC4\xA0the");
  EXPECT_EQ(tok.token_bytes(256), " the");
  EXPECT_EQ(tok.token_id("\xC4\xA0the"), 256);
  EXPECT_EQ(tok.token_id("nope"), -1);
  EXPECT_EQ(tok.bos_id(), 257);
  EXPECT_EQ(tok.eos_id(), -1);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.encode("a", true), (std::vector<int32_t>{257, 'a'}));
  EXPECT_EQ(tok.encode(""), std::vector<int32_t>{});
}

TEST(Tokenizer, BadIdsThrow) {
  Tokenizer tok(byte_spec());
  EXPECT_THROW(tok.decode({1, 256}), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_THROW(tok.token_text(9999), Error);
  EXPECT_THROW(tok.token_bytes(-5), Error);
  EXPECT_THROW(tok.is_special(256), Error);
}

TEST(Tokenizer, BadSpecsThrow) {
  EXPECT_THROW(Tokenizer(TokenizerSpec{}), Error);
  auto s = byte_spec();
  s.eos_id = 300;
  EXPECT_THROW(Tokenizer{s}, Error);
  s = byte_spec();
  s.token_types = {1, 2};
  EXPECT_THROW(Tokenizer{s}, Error);
  s = byte_spec();
  s.added_tokens = {{400, "<x>", true}};
  EXPECT_THROW(Tokenizer{s}, Error);
  s = byte_spec();
  s.added_tokens = {{65, "<x>", true}};  // id 65 is "A"
  EXPECT_THROW(Tokenizer{s}, Error);
  s = byte_spec();
  s.pre_tokenizer = "no-such-pre";
  EXPECT_THROW(Tokenizer{s}, Error);
}

TEST(Tokenizer, InvalidUtf8RoundTrips) {
  Tokenizer tok(byte_spec());
  const std::string text = "ok \xFF\xC3 bad \xE2\x82";
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
}

TEST(Tokenizer, MoveAndConcurrentEncode) {
  auto spec = byte_spec({"ab", "abab"}, {"a b", "ab ab"});
  Tokenizer moved(std::move(spec));
  Tokenizer tok = std::move(moved);
  // encode is const and shares a word cache; several threads must agree.
  std::vector<std::thread> threads;
  std::vector<std::vector<int32_t>> results(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) results[t] = tok.encode("abab aba ab abababab");
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) EXPECT_EQ(r, results[0]);
  EXPECT_EQ(results[0].front(), 257);
}

}  // namespace
}  // namespace upg
