// End-to-end tests of `upg tokenize` and `upg info`: ids against the golden tokenizer
// fixture (from Hugging Face tokenizers), and the config of a GGUF file and of a
// sharded safetensors directory.
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli-test-helpers.h"

namespace upg::cli_test {
namespace {

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> load_cases() {
  std::ifstream in(UPG_SOURCE_DIR "/tests/fixtures/tokenizer-smollm2.json");
  nlohmann::json j = nlohmann::json::parse(in);
  std::vector<Case> cases;
  for (const auto& c : j.at("cases")) cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int32_t>>()});
  return cases;
}

bool has_cjk(const std::string& s) { return contains(s, "中") || contains(s, "日本"); }

TEST(CliTokenize, MatchesGoldenIds) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  const std::vector<Case> all = load_cases();
  // A handful of kinds, not all cases (each run loads the vocabulary): plain English,
  // special tokens, CJK, mixed scripts, emoji, code with tabs and newlines.
  std::vector<const Case*> picked;
  bool special = false, cjk = false, mixed = false;
  for (const Case& c : all) {
    if (c.ids.empty()) continue;
    bool take = c.text == "Hello world" || c.text.rfind("def main", 0) == 0 || c.text == "🤗🤗🤗";
    if (!special && contains(c.text, "<|im_start|>") && contains(c.text, "<|im_end|>")) take = special = true;
    if (!cjk && has_cjk(c.text) && !contains(c.text, "English")) take = cjk = true;
    if (!mixed && contains(c.text, "English") && has_cjk(c.text)) take = mixed = true;
    if (take) picked.push_back(&c);
  }
  ASSERT_TRUE(special && cjk && mixed) << "fixture lacks the expected cases";
  ASSERT_GE(picked.size(), 6u);
  for (const Case* c : picked) {
    SCOPED_TRACE(c->text);
    ProcessResult r = run_upg({"tokenize", model, c->text});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, fmt::format("{}\n", fmt::join(c->ids, " ")));
  }
}

TEST(CliTokenize, NoSpecialTreatsMarkersAsText) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  ProcessResult r = run_upg({"tokenize", model, "<|im_end|>", "--no-special"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out, "2\n") << "--no-special still produced the special token";
  EXPECT_GT(count_lines(r.out), 0);
  EXPECT_TRUE(contains(r.out, " ")) << "expected several ids, got " << r.out;

  r = run_upg({"tokenize", model, "Hello world", "--pieces"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 2) << r.out;
  EXPECT_TRUE(contains(r.out, "19556") && contains(r.out, "\"Hello\"")) << r.out;
  EXPECT_TRUE(contains(r.out, "905") && contains(r.out, "\" world\"")) << r.out;
}

TEST(CliTokenize, ModelWithoutTokenizerIsAnError) {
  ProcessResult r = run_upg({"tokenize", UPG_SOURCE_DIR "/tests/fixtures/tiny/llama", "hi"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_TRUE(contains(r.err, "upg: error: ") && contains(r.err, "tokenizer")) << r.err;
}

TEST(CliInfo, DefaultGguf) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  ProcessResult r = run_upg({"info", model});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(info_field(r.out, "architecture"), "LlamaForCausalLM") << r.out;
  EXPECT_EQ(info_field(r.out, "layers"), "30") << r.out;
  EXPECT_EQ(info_field(r.out, "vocab"), "49152") << r.out;
  EXPECT_EQ(info_field(r.out, "hidden"), "576") << r.out;
  EXPECT_TRUE(contains(info_field(r.out, "tensors"), "272")) << r.out;
  EXPECT_TRUE(contains(info_field(r.out, "tokenizer"), "49152 tokens")) << r.out;
}

TEST(CliInfo, ShardedSafetensorsDirectory) {
  ProcessResult r = run_upg({"info", UPG_SOURCE_DIR "/tests/fixtures/tiny/mistral"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(info_field(r.out, "architecture"), "MistralForCausalLM") << r.out;
  EXPECT_EQ(info_field(r.out, "layers"), "2") << r.out;
  EXPECT_EQ(info_field(r.out, "vocab"), "256") << r.out;
  EXPECT_EQ(info_field(r.out, "shards"), "3") << r.out;
  // 2 layers x 9 tensors + embed, final norm, lm_head.
  EXPECT_EQ(info_field(r.out, "tensors").rfind("21 ", 0), 0u) << r.out;
}

TEST(CliInfo, TensorsFlagListsEveryTensorWithShape) {
  ProcessResult r = run_upg({"info", UPG_SOURCE_DIR "/tests/fixtures/tiny/mistral", "--tensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int listed = 0;
  for (size_t pos = 0; (pos = r.out.find("\n  ", pos)) != std::string::npos; ++pos) ++listed;
  EXPECT_EQ(listed, 21) << r.out;
  EXPECT_TRUE(contains(r.out, "model.embed_tokens.weight")) << r.out;
  EXPECT_TRUE(contains(r.out, "[256, 64]")) << r.out;
  // Without the flag only the summary is printed.
  r = run_upg({"info", UPG_SOURCE_DIR "/tests/fixtures/tiny/mistral"});
  EXPECT_FALSE(contains(r.out, "model.embed_tokens.weight")) << r.out;
}

TEST(CliInfo, EveryTinyArchitecture) {
  const std::vector<std::pair<std::string, std::string>> archs = {{"llama", "LlamaForCausalLM"},
                                                                  {"qwen2", "Qwen2ForCausalLM"},
                                                                  {"phi3", "Phi3ForCausalLM"}};
  for (const auto& [dir, arch] : archs) {
    ProcessResult r = run_upg({"info", UPG_SOURCE_DIR "/tests/fixtures/tiny/" + dir});
    ASSERT_EQ(r.exit_code, 0) << dir << ": " << r.err;
    EXPECT_EQ(info_field(r.out, "architecture"), arch) << r.out;
  }
}

}  // namespace
}  // namespace upg::cli_test
