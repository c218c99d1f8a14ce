// The process runner the CLI tests rely on, and its own tests: a runner that mixed up
// stdout and stderr or lost the exit code would make every CLI test meaningless.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "core/test-paths.h"
#include "cli/cli-test-helpers.h"

extern char** environ;

namespace upg::cli_test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "upg-cli-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

ProcessResult run_process(const std::vector<std::string>& argv, std::string_view stdin_text) {
  TempDir io;
  const std::string in_path = (io / "stdin").string(), out_path = (io / "stdout").string(),
                    err_path = (io / "stderr").string();
  write_file(in_path, stdin_text);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("posix_spawnp " + argv[0] + ": " + std::strerror(rc));

  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  ProcessResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

ProcessResult run_upg(const std::vector<std::string>& args, std::string_view stdin_text, int timeout_seconds) {
  std::vector<std::string> argv = {"timeout", "-k", "5", std::to_string(timeout_seconds), UPG_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, stdin_text);
}

std::string model_path() {
  std::string p = test::default_model_path();
  return std::filesystem::exists(p) ? p : std::string();
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

int count_lines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  if (!s.empty() && s.back() != '\n') ++n;
  return n;
}

std::string info_field(std::string_view out, std::string_view key) {
  const std::string prefix = std::string(key) + ":";
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string_view::npos) end = out.size();
    std::string_view line = out.substr(pos, end - pos);
    if (line.substr(0, prefix.size()) == prefix) {
      line.remove_prefix(prefix.size());
      while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
      return std::string(line);
    }
    pos = end + 1;
  }
  return {};
}

namespace {

TEST(CliHelpers, SeparatesStdoutStderrAndExitCode) {
  ProcessResult r = run_process({"sh", "-c", "printf out; printf err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out");
  EXPECT_EQ(r.err, "err");
}

TEST(CliHelpers, FeedsStdinThenEof) {
  ProcessResult r = run_process({"sh", "-c", "cat; echo done"}, "line 1\nline 2\n");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "line 1\nline 2\ndone\n");
  r = run_process({"cat"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST(CliHelpers, ReportsSignalsAndTimeouts) {
  EXPECT_EQ(run_process({"sh", "-c", "kill -9 $$"}).exit_code, 128 + 9);
  EXPECT_EQ(run_process({"timeout", "0.2", "sleep", "5"}).exit_code, 124);
}

TEST(CliHelpers, TempDirIsFreshAndRemoved) {
  std::filesystem::path kept;
  {
    TempDir a, b;
    EXPECT_NE(a.path(), b.path());
    EXPECT_TRUE(std::filesystem::is_directory(a.path()));
    write_file(a / "f", "x");
    kept = a.path();
  }
  EXPECT_FALSE(std::filesystem::exists(kept));
}

TEST(CliHelpers, LineCountAndInfoField) {
  EXPECT_EQ(count_lines(""), 0);
  EXPECT_EQ(count_lines("a\n"), 1);
  EXPECT_EQ(count_lines("a\nb"), 2);
  EXPECT_EQ(info_field("file:  x\nlayers:        30\n", "layers"), "30");
  EXPECT_EQ(info_field("tied layers: 2\n", "layers"), "");
}

}  // namespace
}  // namespace upg::cli_test
