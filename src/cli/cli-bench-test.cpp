// End-to-end tests of `upg bench`: the JSON lines bench/peer/peer-bench.py reads, the
// table, and flag errors. Tiny runs (-p 8 -n 4 -r 1): the speed is not checked here.
#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli/cli-test-helpers.h"

namespace upg::cli_test {
namespace {

// The lines of s that start with '{'.
std::vector<std::string> json_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find('\n', pos);
    if (end == std::string::npos) end = s.size();
    if (s[pos] == '{') out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// The number after "key": in a flat JSON object; NaN when absent.
double number(const std::string& line, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("\"" + key + "\": (-?[0-9.eE+-]+)"))) return std::nan("");
  return std::stod(m[1]);
}

std::string text(const std::string& line, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("\"" + key + "\": \"([^\"]*)\""))) return "<absent>";
  return m[1];
}

class CliBench : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = model_path();
    if (model_.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  }
  std::string model_;
};

// --parallel N: N sequences side by side, named as llama-batched-bench's npl, tok/s over
// all of them.
TEST_F(CliBench, ParallelRunsSequencesSideBySide) {
  ProcessResult r = run_upg({"bench", model_, "-p", "8", "-n", "4", "-r", "1", "-t", "2", "--parallel", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(text(lines[0], "test"), "pp8 x3");
  EXPECT_EQ(text(lines[1], "test"), "tg4 x3");
  for (const auto& l : lines) {
    EXPECT_EQ(number(l, "n_parallel"), 3) << l;
    EXPECT_GT(number(l, "avg_ts"), 0) << l;
  }
  r = run_upg({"bench", model_, "-n", "4", "--parallel", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--parallel"), std::string::npos) << r.err;
}

TEST_F(CliBench, JsonHasOneLinePerTestWithEveryField) {
  ProcessResult r = run_upg({"bench", model_, "-p", "8", "-n", "4", "-r", "1", "-t", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(count_lines(r.out), 2) << "stdout holds only the JSON lines: " << r.out;
  const char* tests[] = {"pp8", "tg4"};
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    SCOPED_TRACE(l);
    EXPECT_EQ(text(l, "test"), tests[i]);
    EXPECT_EQ(text(l, "model"), model_);
    EXPECT_EQ(number(l, "n_prompt"), i == 0 ? 8 : 0);
    EXPECT_EQ(number(l, "n_gen"), i == 0 ? 0 : 4);
    EXPECT_EQ(number(l, "threads"), 2);
    EXPECT_GT(number(l, "file_bytes"), 1e6);
    EXPECT_GT(number(l, "load_s"), 0);
    EXPECT_GT(number(l, "avg_ts"), 0);
    EXPECT_EQ(number(l, "stddev_ts"), 0);  // one sample
    EXPECT_GT(number(l, "peak_rss_mib"), 10);
    EXPECT_TRUE(std::regex_search(l, std::regex("\"samples_ts\": \\[[0-9.]+\\]"))) << "one sample";
    EXPECT_EQ(text(l, "dtype"), "native");  // GGUF blocks on the integer kernels
    EXPECT_EQ(number(l, "n_depth"), 0) << l;
  }
}

// -d D: both tests after D tokens of context (the cache sized for D and the longer test),
// named as llama-bench names them.
TEST_F(CliBench, DepthRunsEveryTestAfterItsContext) {
  ProcessResult r = run_upg({"bench", model_, "-p", "8", "-n", "4", "-d", "40", "-r", "1", "-t", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(text(lines[0], "test"), "pp8 @ d40");
  EXPECT_EQ(text(lines[1], "test"), "tg4 @ d40");
  for (const auto& l : lines) {
    EXPECT_EQ(number(l, "n_depth"), 40) << l;
    EXPECT_GT(number(l, "avg_ts"), 0) << l;
  }
  EXPECT_TRUE(contains(r.err, "context 48,")) << r.err;
}

TEST_F(CliBench, TableLikeLlamaBenchWithZeroSkippingATest) {
  ProcessResult r = run_upg({"bench", model_, "-p", "0", "-n", "3", "-r", "2", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "| model ")) << r.out;
  EXPECT_TRUE(contains(r.out, " tg3 |")) << r.out;
  EXPECT_FALSE(contains(r.out, "pp0")) << r.out;
  EXPECT_TRUE(contains(r.out, " ± ")) << r.out;
  EXPECT_TRUE(contains(r.out, "load ")) << r.out;
  EXPECT_TRUE(contains(r.out, "peak memory")) << r.out;
}

// The params cell of the table's first row.
std::string params_cell(const std::string& table) {
  std::smatch m;
  if (!std::regex_search(table, m, std::regex("\\| ([0-9.]+ M) \\|"))) return "<absent>";
  return m[1];
}

// A UPG file counts its compressed weights at their dense shapes, as the file it was
// made from counts them (llama-bench counts a GGUF file's quantized weights so).
TEST(CliBenchParams, CompressedFileCountsItsWeightsAsTheSource) {
  const std::string tiny = UPG_SOURCE_DIR "/tests/fixtures/tiny/llama";
  TempDir dir;
  const std::string upg = (dir / "m.upg").string();
  ProcessResult r = run_upg({"compress", tiny, "-o", upg, "--prune", "magnitude", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_upg({"bench", tiny, "-p", "0", "-n", "2", "-r", "1", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string source = params_cell(r.out);
  r = run_upg({"bench", upg, "-p", "0", "-n", "2", "-r", "1", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(source, "<absent>") << r.out;
  EXPECT_EQ(params_cell(r.out), source) << r.out;
}

TEST(CliBenchFlags, BadValuesAreClearErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string m = "model.gguf";  // never opened: the flags fail first
  const std::vector<Case> cases = {
      {{"bench", m, "-p", "-1"}, "--n-prompt"},
      {{"bench", m, "-n", "x"}, "--n-gen"},
      {{"bench", m, "-r", "0"}, "--repetitions"},
      {{"bench", m, "-d", "-1"}, "--n-depth"},
      {{"bench", m, "-t", "-2"}, "--threads"},
      {{"bench", m, "--dtype", "q4"}, "--dtype"},
      {{"bench", m, "-p", "0", "-n", "0"}, "nothing to measure"},
      {{"bench"}, "model"},
  };
  for (const Case& c : cases) {
    ProcessResult r = run_upg(c.args);
    SCOPED_TRACE(testing::PrintToString(c.args));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(contains(r.err, c.message)) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST_F(CliBench, PromptPastTheModelsContextNamesTheBenchFlags) {
  ProcessResult r = run_upg({"bench", model_, "-p", "100000", "-n", "1", "-r", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "-p/--n-prompt")) << r.err;
  EXPECT_TRUE(contains(r.err, "max_position_embeddings")) << r.err;
  EXPECT_FALSE(contains(r.err, "--ctx-size")) << r.err;
}

TEST_F(CliBench, DepthPastTheModelsContextNamesTheDepthFlag) {
  ProcessResult r = run_upg({"bench", model_, "-p", "8", "-n", "1", "-d", "100000", "-r", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "-d/--n-depth")) << r.err;
  EXPECT_TRUE(contains(r.err, "max_position_embeddings")) << r.err;
}

TEST(CliBenchFlags, UnreadableModelIsAnErrorNamingTheFile) {
  TempDir dir;
  write_file(dir / "bad.gguf", "not a gguf file");
  ProcessResult r = run_upg({"bench", (dir / "bad.gguf").string(), "-p", "4", "-n", "2", "-r", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "upg: error:")) << r.err;
  EXPECT_TRUE(contains(r.err, "bad.gguf")) << r.err;
}

}  // namespace
}  // namespace upg::cli_test
