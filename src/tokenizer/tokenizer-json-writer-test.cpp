// to_tokenizer_json / to_tokenizer_config_json: what they write reads back through
// parse_tokenizer_json to a tokenizer giving the same ids, for the real GGUF's spec and
// for each pre-tokenizer preset.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/test-paths.h"
#include "tokenizer/pre-tokenizer.h"
#include "tokenizer/test-vocab.h"
#include "upg/core/error.h"
#include "upg/io/io.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

using json = nlohmann::json;

std::string model_path() { return test::default_model_path(); }

TokenizerSpec round_trip(const TokenizerSpec& spec) {
  return parse_tokenizer_json(to_tokenizer_json(spec), to_tokenizer_config_json(spec), "written");
}

const std::vector<std::string> kTexts = {
    "Hello world", "  two  spaces\n\tand tabs", "1234567 3.14159 x2y", "Don't we'll THEY'RE", "héllo wörld — ünïcode 日本語",
    "<|im_start|>user\nHi<|im_end|>", "a\r\nb", ""};

TEST(TokenizerJsonWriter, GgufSpecGivesTheSameIds) {
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "model file " << model_path() << " is absent";
  LoadOptions opts;
  opts.as_stored = true;  // only the tokenizer is wanted
  ModelSource src = load_model_source(model_path(), opts);
  ASSERT_TRUE(src.tokenizer.has_value());
  const TokenizerSpec& gguf = *src.tokenizer;
  const TokenizerSpec back = round_trip(gguf);
  EXPECT_EQ(back.vocab, gguf.vocab);
  EXPECT_EQ(back.merges, gguf.merges);
  EXPECT_EQ(back.bos_id, gguf.bos_id);
  EXPECT_EQ(back.eos_id, gguf.eos_id);
  EXPECT_EQ(back.add_bos, gguf.add_bos);
  EXPECT_EQ(back.chat_template, gguf.chat_template);

  const Tokenizer a(gguf), b(back);
  std::ifstream in(UPG_SOURCE_DIR "/tests/fixtures/tokenizer-smollm2.json");
  ASSERT_TRUE(in) << "missing tests/fixtures/tokenizer-smollm2.json";
  const json doc = json::parse(in);
  ASSERT_GE(doc.at("cases").size(), 20u);
  for (const auto& c : doc.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(b.encode(text), want) << "text: " << text;
    EXPECT_EQ(b.encode(text), a.encode(text)) << "text: " << text;
  }
  for (int32_t id = 0; id < a.vocab_size(); ++id) ASSERT_EQ(a.is_special(id), b.is_special(id)) << id;
  EXPECT_EQ(b.apply_chat_template({{"user", "Hi"}}), a.apply_chat_template({{"user", "Hi"}}));

  // The structure the Hugging Face library expects for SmolLM2.
  const json j = json::parse(to_tokenizer_json(gguf));
  EXPECT_EQ(j["pre_tokenizer"]["type"], "Sequence");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Digits");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"], true);
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][1]["type"], "ByteLevel");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][1]["use_regex"], true);
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(j["added_tokens"][0]["special"], true);
}

// Each preset: the written pre-tokenizer has the documented shape and splits the same.
TEST(TokenizerJsonWriter, PreTokenizerPresets) {
  struct Case {
    const char* pre;
    const char* top_type;
    bool ignore_merges;
  };
  for (Case c : {Case{"gpt2", "ByteLevel", false}, Case{"smollm", "Sequence", false},
                 Case{"llama-bpe", "Sequence", true}, Case{"qwen2", "Sequence", false}}) {
    SCOPED_TRACE(c.pre);
    TokenizerSpec spec = tokenizer::testing::byte_spec({"\xC4\xA0t", "he", "\xC4\xA0the"},
                                                       {"\xC4\xA0 t", "h e", "\xC4\xA0t he"});
    spec.pre_tokenizer = c.pre;
    const json j = json::parse(to_tokenizer_json(spec));
    EXPECT_EQ(j["pre_tokenizer"]["type"], c.top_type);
    EXPECT_EQ(j["model"]["ignore_merges"], c.ignore_merges);
    if (std::string(c.pre) == "llama-bpe" || std::string(c.pre) == "qwen2") {
      const auto& steps = j["pre_tokenizer"]["pretokenizers"];
      ASSERT_EQ(steps.size(), 2u);
      EXPECT_EQ(steps[0]["type"], "Split");
      EXPECT_EQ(steps[0]["pattern"]["Regex"], tokenizer::pre_tokenizer_preset(c.pre).regexes[0]);
      EXPECT_EQ(steps[0]["behavior"], "Isolated");
      EXPECT_EQ(steps[1]["type"], "ByteLevel");
      EXPECT_EQ(steps[1]["use_regex"], false);
    }
    const Tokenizer a(spec), b(round_trip(spec));
    for (const auto& t : kTexts) EXPECT_EQ(b.encode(t), a.encode(t)) << t;
  }
}

TEST(TokenizerJsonWriter, SpecialTokensBosAndConfig) {
  TokenizerSpec spec = tokenizer::testing::byte_spec({"<s>", "</s>", "<|user|>"});
  spec.token_types.assign(spec.vocab.size(), 1);
  spec.token_types[256] = 3;  // control
  spec.token_types[257] = 3;
  spec.token_types[258] = 4;  // user-defined: literal but not special
  spec.bos_id = 256;
  spec.eos_id = 257;
  spec.add_bos = true;
  spec.chat_template = "{% for m in messages %}<|user|>{{ m.content }}{% endfor %}";

  const json cfg = json::parse(to_tokenizer_config_json(spec));
  EXPECT_EQ(cfg["bos_token"], "<s>");
  EXPECT_EQ(cfg["eos_token"], "</s>");
  EXPECT_EQ(cfg["add_bos_token"], true);
  EXPECT_EQ(cfg["chat_template"], spec.chat_template);
  EXPECT_TRUE(cfg["pad_token"].is_null());

  const json j = json::parse(to_tokenizer_json(spec));
  ASSERT_EQ(j["added_tokens"].size(), 3u);
  EXPECT_EQ(j["added_tokens"][2]["content"], "<|user|>");
  EXPECT_EQ(j["added_tokens"][2]["special"], false);
  EXPECT_EQ(j["post_processor"]["type"], "TemplateProcessing");

  const TokenizerSpec back = round_trip(spec);
  const Tokenizer a(spec), b(back);
  EXPECT_TRUE(b.add_bos());
  EXPECT_EQ(b.bos_id(), 256);
  EXPECT_TRUE(b.is_special(256));
  EXPECT_FALSE(b.is_special(258));
  const std::string text = "<s>hi<|user|>there</s>";
  EXPECT_EQ(b.encode(text, true), a.encode(text, true));
  // <s> h i <|user|> t h e r e </s>: the literal tokens are matched whole.
  EXPECT_EQ(b.encode(text), (std::vector<int32_t>{256, 'h', 'i', 258, 't', 'h', 'e', 'r', 'e', 257}));
  // Without tokenizer_config.json, the post-processor alone still says "add bos".
  const TokenizerSpec bare = parse_tokenizer_json(to_tokenizer_json(spec), "", "written");
  EXPECT_TRUE(bare.add_bos);
  EXPECT_EQ(bare.bos_id, 256);
}

TEST(TokenizerJsonWriter, TokenizerJsonSpecRoundTrips) {
  // A spec parsed from tokenizer.json (explicit regexes) is written back unchanged.
  TokenizerSpec spec = tokenizer::testing::byte_spec({"\xC4\xA0t"}, {"\xC4\xA0 t"});
  spec.pre_tokenizer.clear();
  spec.pre_regexes = {tokenizer::kDigitRegex, R"(\s+|[a-z]+)", tokenizer::kGpt2Regex};
  const TokenizerSpec back = round_trip(spec);
  EXPECT_EQ(back.pre_regexes, spec.pre_regexes);
  const Tokenizer a(spec), b(back);
  for (const auto& t : kTexts) EXPECT_EQ(b.encode(t), a.encode(t)) << t;
}

TEST(TokenizerJsonWriter, RejectsWhatJsonCannotHold) {
  TokenizerSpec spec = tokenizer::testing::byte_spec({"dup", "dup"});
  try {
    to_tokenizer_json(spec);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'dup' has two ids, 256 and 257"), std::string::npos) << e.what();
  }
  TokenizerSpec bad = tokenizer::testing::byte_spec();
  bad.eos_id = 999;
  EXPECT_THROW(to_tokenizer_config_json(bad), Error);
  EXPECT_THROW(to_tokenizer_json(TokenizerSpec{}), Error);
}

}  // namespace
}  // namespace upg
