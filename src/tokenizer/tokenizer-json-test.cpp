#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "upg/tokenizer/byte-level.h"
#include "upg/core/error.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

using json = nlohmann::json;

// A small but complete byte-level BPE tokenizer.json: 256 byte tokens, "Ġt"/"Ġthe"
// merges, two added tokens.
json base() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[tokenizer::bytes_to_byte_level(std::string(1, char(b)))] = b;
  vocab["\xC4\xA0t"] = 256;
  vocab["he"] = 257;
  vocab["\xC4\xA0the"] = 258;
  return {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\xC4\xA0 t", "h e", "\xC4\xA0t he"}}, {"ignore_merges", false}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 259}, {"content", "<|im_start|>"}, {"special", true}},
        {{"id", 260}, {"content", "<|im_end|>"}, {"special", true}}}},
  };
}

std::string error_of(const json& tok, const std::string& config = "") {
  try {
    Tokenizer t(parse_tokenizer_json(tok.dump(), config, "dir/tokenizer.json"));
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

#define EXPECT_ERROR(tok, ...)                                                                       \
  do {                                                                                               \
    const std::string msg = error_of(tok);                                                           \
    EXPECT_NE(msg.find("dir/tokenizer.json"), std::string::npos) << msg;                             \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(msg.find(part), std::string::npos) << msg;      \
  } while (0)

TEST(TokenizerJson, ParsesAndEncodes) {
  json cfg = {{"bos_token", "<|im_start|>"},
              {"eos_token", {{"content", "<|im_end|>"}, {"lstrip", false}}},
              {"add_bos_token", true},
              // bos_token and eos_token reach the template as the config's token texts.
              {"chat_template",
               "{% for m in messages %}{{ bos_token + m.role + '\\n' + m.content + eos_token + '\\n' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ bos_token + 'assistant\\n' }}{% endif %}"}};
  const TokenizerSpec spec = parse_tokenizer_json(base().dump(), cfg.dump(), "dir/tokenizer.json");
  EXPECT_EQ(spec.vocab.size(), 261u);
  EXPECT_EQ(spec.merges.size(), 3u);
  EXPECT_EQ(spec.bos_id, 259);
  EXPECT_EQ(spec.eos_id, 260);
  EXPECT_TRUE(spec.add_bos);
  Tokenizer tok(spec);
  EXPECT_EQ(tok.encode("<|im_start|>in the", true), (std::vector<int32_t>{259, 259, 'i', 'n', 258}));
  EXPECT_EQ(tok.decode(tok.encode("<|im_start|>in the")), "<|im_start|>in the");
  EXPECT_EQ(tok.decode(tok.encode("<|im_start|>in the"), true), "in the");
  EXPECT_EQ(tok.apply_chat_template({{"user", "x"}}), "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(tok.stop_ids(), (std::vector<int32_t>{260}));
}

TEST(TokenizerJson, MergePairsAndLlama3Pipeline) {
  json t = base();
  // json::array spelled out: nested braces of string pairs would make an object.
  t["model"]["merges"] = json::array({json::array({"\xC4\xA0", "t"}), json::array({"h", "e"}),
                                      json::array({"\xC4\xA0t", "he"})});
  t["model"]["ignore_merges"] = true;
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  t["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<|im_start|>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  const TokenizerSpec spec = parse_tokenizer_json(t.dump(), "", "dir/tokenizer.json");
  EXPECT_EQ(spec.merges[0], "\xC4\xA0 t");
  EXPECT_TRUE(spec.ignore_merges);
  EXPECT_EQ(spec.bos_id, 259);  // from the post-processor
  EXPECT_TRUE(spec.add_bos);
  Tokenizer tok(spec);
  EXPECT_EQ(tok.encode("12345 the"), (std::vector<int32_t>{'1', '2', '3', '4', '5', 258}));
}

TEST(TokenizerJson, DigitsSequenceAndTemplateList) {
  json t = base();
  t["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Digits"}, {"individual_digits", true}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  json cfg = {{"chat_template", {{{"name", "tool_use"}, {"template", "x"}}, {{"name", "default"}, {"template", "<|im_sep|>"}}}}};
  const TokenizerSpec spec = parse_tokenizer_json(t.dump(), cfg.dump(), "o");
  EXPECT_EQ(spec.chat_template, "<|im_sep|>");
  Tokenizer tok(spec);
  const auto ids = tok.encode("a 12");
  EXPECT_EQ(ids, (std::vector<int32_t>{'a', ' ', '1', '2'}));
}

TEST(TokenizerJson, RejectsNonBpeModels) {
  json t = base();
  t["model"]["type"] = "Unigram";
  EXPECT_ERROR(t, "model.type", "Unigram");
  t = base();
  t["model"]["byte_fallback"] = true;
  EXPECT_ERROR(t, "model.byte_fallback");
}

TEST(TokenizerJson, RejectsMissingOrBadVocab) {
  json t = base();
  t["model"].erase("vocab");
  EXPECT_ERROR(t, "model.vocab", "missing");
  t = base();
  t["model"]["vocab"]["x"] = -3;
  EXPECT_ERROR(t, "model.vocab", "'x'");
  t = base();
  t["model"]["vocab"]["\xC4\xA0t"] = 5000;  // leaves a hole
  EXPECT_ERROR(t, "model.vocab", "5000");
  t = base();
  t["added_tokens"][0]["id"] = 65;  // "A" already has id 65
  EXPECT_ERROR(t, "added_tokens[0]", "65");
}

TEST(TokenizerJson, RejectsBadMerges) {
  json t = base();
  t["model"]["merges"][1] = "hxe";
  EXPECT_ERROR(t, "model.merges[1]", "'hxe'");
  t = base();
  t["model"]["merges"][2] = json::array({"a", "b", "c"});
  EXPECT_ERROR(t, "model.merges[2]");
  t = base();
  t["model"]["merges"].push_back("q z");  // "qz" is not in the vocab
  // Well-formed, so parsing passes; the Tokenizer rejects the unknown token.
  EXPECT_NO_THROW(parse_tokenizer_json(t.dump(), "", "o"));
  EXPECT_NE(error_of(t).find("merges[3]"), std::string::npos) << error_of(t);
}

TEST(TokenizerJson, RejectsUnsupportedPipelines) {
  json t = base();
  t["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
  EXPECT_ERROR(t, "pre_tokenizer.type", "Metaspace");
  t = base();
  t["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "ByteLevel"}, {"add_prefix_space", false}}, {{"type", "Whitespace"}}}}};
  EXPECT_ERROR(t, "pre_tokenizer.pretokenizers[1].type", "Whitespace");
  t = base();
  t["pre_tokenizer"]["add_prefix_space"] = true;
  EXPECT_ERROR(t, "pre_tokenizer.add_prefix_space");
  t = base();
  t["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s"}}}, {"behavior", "Removed"}};
  EXPECT_ERROR(t, "pre_tokenizer.behavior", "Removed");
  t = base();
  t["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_ERROR(t, "pre_tokenizer", "ByteLevel");
  t = base();
  t["decoder"] = {{"type", "Metaspace"}};
  EXPECT_ERROR(t, "decoder.type", "Metaspace");
  t = base();
  t["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_ERROR(t, "normalizer.type", "Lowercase");
}

TEST(TokenizerJson, BoundsNestedSequences) {
  json t = base();
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  // Nested Sequences the JSON depth limit still lets through: four parse, five are refused
  // before recursing further.
  for (int i = 0; i < 4; ++i) bl = {{"type", "Sequence"}, {"pretokenizers", {bl}}};
  t["pre_tokenizer"] = bl;
  EXPECT_EQ(error_of(t), "no error");
  t["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {bl}}};
  EXPECT_ERROR(t, "pre_tokenizer.pretokenizers[0].pretokenizers[0].pretokenizers[0].pretokenizers[0]",
               "Sequence nested more than 4 deep");
}

TEST(TokenizerJson, RejectsDeepJson) {
  // 40k levels of arrays under one key crashed the parser's callers by recursion.
  const std::string deep = "{\"model\":" + std::string(40000, '[') + std::string(40000, ']') + "}";
  try {
    parse_tokenizer_json(deep, "", "dir/tokenizer.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dir/tokenizer.json: tokenizer.json: not valid JSON: nested deeper"),
              std::string::npos)
        << e.what();
  }
}

TEST(TokenizerJson, RejectsBadJsonAndConfig) {
  EXPECT_THROW(parse_tokenizer_json("{not json", "", "o"), Error);
  const std::string msg = error_of(base(), R"({"bos_token": "<nope>"})");
  EXPECT_NE(msg.find("bos_token"), std::string::npos) << msg;
  EXPECT_NE(msg.find("<nope>"), std::string::npos) << msg;
  EXPECT_NE(error_of(base(), R"({"chat_template": 3})").find("chat_template"), std::string::npos);
}

}  // namespace
}  // namespace upg
