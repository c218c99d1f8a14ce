#pragma once
// Shared by the end-to-end tests of the `upg` binary (cli-*-test.cpp): run a process
// with captured stdout/stderr, scratch directories, and where the model lives. Kept in
// a header plus cli-helpers-test.cpp because every non-test .cpp in src/cli is linked
// into the upg executable.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace upg::cli_test {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed by a signal; 124 when `timeout` fired
  std::string out;
  std::string err;
};

// A fresh directory from mkdtemp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Runs argv[0] (looked up in PATH) with stdin fed from `stdin_text` (nothing: empty
// stdin, i.e. immediate EOF) and stdout/stderr captured separately through files, so a
// child that fills one pipe can never dead-lock the test.
ProcessResult run_process(const std::vector<std::string>& argv, std::string_view stdin_text = {});

// Runs the built upg binary under `timeout` so a hung command fails instead of
// stalling the suite.
ProcessResult run_upg(const std::vector<std::string>& args, std::string_view stdin_text = {},
                      int timeout_seconds = 120);

// The default model (env UPG_MODEL, else models/ in the source tree); empty when absent.
std::string model_path();

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, std::string_view bytes);

bool contains(std::string_view haystack, std::string_view needle);
// Number of '\n'-terminated lines (a trailing fragment counts as one more).
int count_lines(std::string_view s);
// Value after "key:" on the first line that starts with it (trimmed), for `upg info`.
std::string info_field(std::string_view out, std::string_view key);

}  // namespace upg::cli_test
