// End-to-end tests of the `upg` binary: help and usage errors, and bad model files.
// Every bad input must end in exit code 1 and ONE stderr line "upg: error: ..." that
// names the file, never a crash or a partial load.
#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli/cli-test-helpers.h"
#include "upg/kernels_cuda/cuda.h"

namespace upg::cli_test {
namespace {

namespace fs = std::filesystem;

void expect_mentions_all(const std::string& text, const std::vector<std::string>& words, const std::string& what) {
  for (const std::string& w : words) EXPECT_TRUE(contains(text, w)) << what << " does not mention " << w << ":\n" << text;
}

TEST(CliHelp, TopLevelListsEverySubcommand) {
  ProcessResult r = run_upg({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_mentions_all(r.out, {"run", "chat", "tokenize", "info", "--version"}, "upg --help");
  r = run_upg({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "upg ")) << r.out;
}

TEST(CliHelp, RunAndChatDocumentEveryGenerationFlag) {
  const std::vector<std::string> common = {"--temp",     "--top-k",          "--top-p",  "--min-p",
                                           "--seed",     "--ctx-size",       "--n-predict", "--dtype",
                                           "--threads",  "--repeat-penalty", "--stop",   "--ignore-eos",
                                           "--frequency-penalty", "--presence-penalty", "--repeat-last-n",
                                           "--system-prompt"};
  ProcessResult r = run_upg({"run", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_mentions_all(r.out, common, "upg run --help");
  expect_mentions_all(r.out, {"--raw", "--prompt", "--file"}, "upg run --help");

  r = run_upg({"chat", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_mentions_all(r.out, common, "upg chat --help");
}

TEST(CliHelp, TokenizeAndInfo) {
  ProcessResult r = run_upg({"tokenize", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_mentions_all(r.out, {"model", "text", "--pieces", "--no-special"}, "upg tokenize --help");
  r = run_upg({"info", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_mentions_all(r.out, {"model"}, "upg info --help");
}

TEST(CliUsage, NoSubcommandFails) {
  ProcessResult r = run_upg({});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "subcommand")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(CliUsage, UnknownFlagOrSubcommandFails) {
  ProcessResult r = run_upg({"--bogus"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(r.err.empty());

  r = run_upg({"run", "whatever.gguf", "--bogus-flag"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "--bogus-flag")) << r.err;
  EXPECT_EQ(r.out, "");

  r = run_upg({"frobnicate"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(r.err.empty());
}

TEST(CliUsage, MissingModelArgumentFails) {
  ProcessResult r = run_upg({"run"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "model")) << r.err;
}

// Runs info, tokenize and run on `model` and checks each fails cleanly with one line
// naming `must_name` and every one of `details`.
void expect_clean_failure(const std::string& model, const std::string& must_name,
                          const std::vector<std::string>& details = {}) {
  const std::vector<std::vector<std::string>> commands = {
      {"info", model}, {"tokenize", model, "hello"}, {"run", model, "-n", "1", "-p", "hi"}};
  for (const auto& args : commands) {
    SCOPED_TRACE("upg " + args[0] + " " + model);
    ProcessResult r = run_upg(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("upg: error: ", 0), 0u) << r.err;
    EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << r.err;
    EXPECT_TRUE(contains(r.err, must_name)) << "error does not name " << must_name << ": " << r.err;
    for (const std::string& d : details) EXPECT_TRUE(contains(r.err, d)) << "error lacks '" << d << "': " << r.err;
    EXPECT_EQ(r.out, "");
  }
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = char(rng() & 0xff);
  return s;
}

TEST(CliBadInput, MissingFile) {
  TempDir tmp;
  expect_clean_failure((tmp / "nope.gguf").string(), "nope.gguf");
}

TEST(CliBadInput, DirectoryWithoutModelFiles) {
  TempDir tmp;
  fs::create_directory(tmp / "empty");
  expect_clean_failure((tmp / "empty").string(), (tmp / "empty").string());
}

TEST(CliBadInput, DirectoryWithWeightsButNoConfig) {
  TempDir tmp;
  fs::create_directory(tmp / "noconfig");
  fs::copy_file(UPG_SOURCE_DIR "/tests/fixtures/tiny/llama/model.safetensors", tmp / "noconfig/model.safetensors");
  expect_clean_failure((tmp / "noconfig").string(), "noconfig", {"config.json"});
}

TEST(CliBadInput, EmptyGguf) {
  TempDir tmp;
  write_file(tmp / "x.gguf", "");
  expect_clean_failure((tmp / "x.gguf").string(), "x.gguf");
}

TEST(CliBadInput, WrongGgufMagic) {
  TempDir tmp;
  std::string bytes = "GGUX" + random_bytes(4096, 1);
  write_file(tmp / "magic.gguf", bytes);
  expect_clean_failure((tmp / "magic.gguf").string(), "magic.gguf", {"magic"});
}

class CliTruncatedGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = model_path();
    if (model_.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
    bytes_ = read_file(model_);
    ASSERT_GT(bytes_.size(), 100000u);
  }
  std::string model_, bytes_;
  TempDir tmp_;
};

TEST_F(CliTruncatedGguf, First1000BytesNamesTheMetadata) {
  write_file(tmp_ / "cut1000.gguf", std::string_view(bytes_).substr(0, 1000));
  // 1000 bytes end inside the metadata key/value section.
  expect_clean_failure((tmp_ / "cut1000.gguf").string(), "cut1000.gguf", {"metadata"});
}

TEST_F(CliTruncatedGguf, HalfTheFileNamesATensorOutsideIt) {
  write_file(tmp_ / "half.gguf", std::string_view(bytes_).substr(0, bytes_.size() / 2));
  expect_clean_failure((tmp_ / "half.gguf").string(), "half.gguf", {"tensor '", "outside the file"});
}

TEST(CliBadInput, RandomBytesSafetensors) {
  TempDir tmp;
  write_file(tmp / "random.safetensors", random_bytes(5000, 2));
  expect_clean_failure((tmp / "random.safetensors").string(), "random.safetensors");
  // With a valid config beside it the header itself is what gets rejected.
  fs::copy_file(UPG_SOURCE_DIR "/tests/fixtures/tiny/llama/config.json", tmp / "config.json");
  expect_clean_failure((tmp / "random.safetensors").string(), "random.safetensors", {"header"});
}

TEST(CliBadInput, SafetensorsHeaderLengthPastEof) {
  TempDir tmp;
  fs::copy_file(UPG_SOURCE_DIR "/tests/fixtures/tiny/llama/config.json", tmp / "config.json");
  std::string bytes(8, '\0');
  const uint64_t len = 4096;  // the file holds 8 + 2 bytes
  for (int i = 0; i < 8; ++i) bytes[i] = char((len >> (8 * i)) & 0xff);
  bytes += "{}";
  write_file(tmp / "short.safetensors", bytes);
  expect_clean_failure((tmp / "short.safetensors").string(), "short.safetensors", {"header"});
}

TEST(CliBadInput, UnsupportedArchitectureInConfig) {
  TempDir tmp;
  fs::copy(UPG_SOURCE_DIR "/tests/fixtures/tiny/llama", tmp / "gpt2", fs::copy_options::recursive);
  std::string config = read_file(tmp / "gpt2/config.json");
  size_t at = config.find("LlamaForCausalLM");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, std::string("LlamaForCausalLM").size(), "GPT2LMHeadModel");
  write_file(tmp / "gpt2/config.json", config);
  expect_clean_failure((tmp / "gpt2").string(), "config.json", {"GPT2LMHeadModel"});
}

TEST(CliBadInput, MissingPromptFile) {
  TempDir tmp;
  // The prompt file is read before the model, so this needs no model on disk.
  std::string model = model_path();
  if (model.empty()) model = (tmp / "model.gguf").string();
  ProcessResult r = run_upg({"run", model, "-f", (tmp / "no-prompt.txt").string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("upg: error: ", 0), 0u) << r.err;
  EXPECT_TRUE(contains(r.err, "no-prompt.txt")) << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace upg::cli_test

namespace upg::cli_test {
namespace {

// Without a GPU (CI) or in a build without the CUDA backend, --device cuda is one line
// on stderr and exit 1, for every command that runs a model.
TEST(CliDevice, CudaWithoutAGpuIsOneClearError) {
  std::string why;
  if (cuda_available(&why)) GTEST_SKIP() << "a CUDA device is present";
  const std::string model = UPG_SOURCE_DIR "/tests/fixtures/tiny/llama";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"run", model, "--device", "cuda", "-p", "hi", "-n", "2"},
        std::vector<std::string>{"perplexity", model, "--device", "cuda", "--ctx", "64", "--text", model + "/config.json"}}) {
    ProcessResult r = run_upg(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << args[0] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args[0] << ": " << r.err;
  }
  ProcessResult r = run_upg({"run", model, "--device", "tpu"});
  EXPECT_NE(r.exit_code, 0);
  // Tensor parallelism on GPUs without CUDA: the same line.
  r = run_upg({"run", model, "--device", "cuda", "--tensor-parallel", "2", "-p", "hi", "-n", "2"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
}

// --score-second-half: whole windows only, each scoring the tokens after its first half
// (64 tokens at --ctx 16: 4 windows of 7 scored tokens, against 15 each by default).
TEST(CliPerplexity, SecondHalfScoresFewerTokens) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  const std::string text = UPG_SOURCE_DIR "/tests/fixtures/eval/kjv-slice.txt";
  ProcessResult all = run_upg({"perplexity", model, "--text", text, "--ctx", "16", "--max-tokens", "64", "-t", "1"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_NE(all.out.find("over 60 scored tokens; 4 windows"), std::string::npos) << all.out;
  ProcessResult half = run_upg({"perplexity", model, "--text", text, "--ctx", "16", "--max-tokens", "64", "-t", "1",
                                "--score-second-half"});
  ASSERT_EQ(half.exit_code, 0) << half.err;
  EXPECT_NE(half.out.find("over 28 scored tokens; 4 windows"), std::string::npos) << half.out;
}

}  // namespace
}  // namespace upg::cli_test
