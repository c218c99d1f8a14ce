// End-to-end tests of the `upg` binary on hostile input and a hostile environment: a
// stdout that cannot be written, prompt files that are not files. The tiny fixture
// model needs no download, so most of these also run under the sanitizers.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli/cli-test-helpers.h"
#include "core/test-paths.h"

namespace upg::cli_test {
namespace {

// `upg ARGS` through bash with stdout redirected as `redirect` says.
ProcessResult run_redirected(const std::vector<std::string>& args, const std::string& redirect) {
  std::vector<std::string> argv = {"bash", "-c", "exec \"$@\" " + redirect, "bash", "timeout", "60", UPG_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

TEST(CliOutput, FullOrClosedStdoutIsAnError) {
  const std::string tiny = test::fixture("tiny/llama");
  // Exited 0 with the output lost.
  for (const char* redirect : {">/dev/full", ">&-"}) {
    SCOPED_TRACE(redirect);
    ProcessResult r = run_redirected({"info", tiny, "--tensors"}, redirect);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_TRUE(contains(r.err, "upg: error: standard output: write failed")) << r.err;
  }
}

TEST(CliOutput, GenerationStopsWhenStdoutIsFull) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  ProcessResult r = run_redirected({"run", model, "-p", "Hi", "-n", "8", "--temp", "0"}, ">/dev/full");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "upg: error: standard output: write failed: No space left on device")) << r.err;
  EXPECT_FALSE(contains(r.err, "tok/s")) << "stats of a run whose output was lost:\n" << r.err;
}

TEST(CliInput, PromptFileMustBeABoundedFile) {
  std::string model = model_path();
  if (model.empty()) model = "absent-model.gguf";
  // A directory read as an empty prompt; /dev/zero was read until memory ran out.
  ProcessResult r = run_upg({"run", model, "-f", "/tmp"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "upg: error: /tmp: cannot read the prompt file: it is a directory")) << r.err;
  r = run_upg({"run", model, "-f", "/dev/zero"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "/dev/zero: cannot read the prompt file: more than the limit of 16777216 bytes"))
      << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace upg::cli_test
