#pragma once
// Test-only helpers for the tests of output files (upg/io/atomic-file.h and its users): a
// pid that is surely dead, the name a killed run's temp would have, a file's bytes, a directory listing.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "upg/core/error.h"

namespace upg::io::testing {

// The pid of a child that has exited and been reaped: no process has it until the
// kernel cycles through the pid space again.
inline pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

// The temp name a run with `pid` uses for `target` (see upg/io/atomic-file.h).
inline std::string temp_name(const std::string& target, pid_t pid, const std::string& tag = "aB3xY9") {
  return target + "." + std::to_string(pid) + "-" + tag + ".tmp";
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The names in `dir`, sorted.
inline std::vector<std::string> dir_entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Runs `write` in a child whose file size limit is `limit` bytes (the limit is per
// process) and returns its exit code: 0 when it threw upg::Error naming `path` and the
// reason "File too large", 2 for another message, 3 for no error, 4 for another exception.
template <class Write>
int exit_code_past_size_limit(size_t limit, const std::string& path, Write&& write) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const struct rlimit lim = {limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    int code = 3;
    try {
      write();
    } catch (const Error& e) {
      const std::string msg = e.what();
      code = msg.find(path) != std::string::npos && msg.find("File too large") != std::string::npos ? 0 : 2;
    } catch (...) {  // a child must never return into the test runner
      code = 4;
    }
    ::_exit(code);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// True when some name in `dir` ends in ".tmp": a temp left behind.
inline bool has_temp(const std::filesystem::path& dir) {
  for (const auto& name : dir_entries(dir))
    if (name.ends_with(".tmp")) return true;
  return false;
}

}  // namespace upg::io::testing
