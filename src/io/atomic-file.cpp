#include "upg/io/atomic-file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::io {

namespace {

namespace fs = std::filesystem;

std::string os_error(int e = errno) { return std::strerror(e); }

// "out/" names the directory "out": the rename needs the name without the slash.
std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

struct Parts {
  std::string dir, base;
};
Parts split(const std::string& target) {
  const size_t slash = target.find_last_of('/');
  if (slash == std::string::npos) return {".", target};
  return {slash == 0 ? "/" : target.substr(0, slash), target.substr(slash + 1)};
}

std::string random_tag() {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{(uint64_t(std::random_device{}()) << 32) ^ uint64_t(::getpid())};
  std::string s(6, '\0');
  for (char& c : s) c = kChars[rng() % (sizeof(kChars) - 1)];
  return s;
}

// Creates "<target>.<pid>-<tag>.tmp" through `create` (which must fail with EEXIST
// when the name is taken, as O_EXCL and mkdir do) and returns its path.
template <class Create>
std::string create_unique(const std::string& target, Create create) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string p = fmt::format("{}.{}-{}.tmp", target, ::getpid(), random_tag());
    if (create(p)) return p;
    if (errno != EEXIST) throw Error(fmt::format("{}: cannot create {}: {}", target, p, os_error()));
  }
  throw Error(fmt::format("{}: no unused temp name beside it after 100 tries", target));
}

// The pid in "<base>.<pid>-<tag>.tmp", or 0 when `name` is no temp of `base`.
pid_t temp_owner(std::string_view name, std::string_view base) {
  constexpr std::string_view kSuffix = ".tmp";
  constexpr size_t kTag = 6;
  if (!name.starts_with(base) || !name.ends_with(kSuffix)) return 0;
  std::string_view rest = name.substr(base.size());
  if (rest.size() < 1 + 1 + 1 + kTag + kSuffix.size() || rest[0] != '.') return 0;
  rest = rest.substr(1, rest.size() - 1 - kSuffix.size());  // "<pid>-<tag>"
  const size_t dash = rest.size() - kTag - 1;
  if (rest[dash] != '-') return 0;
  for (char c : rest.substr(dash + 1))
    if (!std::isalnum(static_cast<unsigned char>(c))) return 0;
  const std::string_view digits = rest.substr(0, dash);
  if (digits.empty() || digits.size() > 10) return 0;
  long long pid = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    pid = pid * 10 + (c - '0');
  }
  return pid > 0 && pid <= INT_MAX ? pid_t(pid) : 0;
}

// True when the temp at `p` can only be left over from a dead run: its pid is not a
// live process (so pid reuse can only keep a stale temp, never remove a live one) and
// no one holds its flock (which a writer in another pid namespace would).
bool left_by_dead_run(const std::string& p, pid_t pid) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) return false;
  if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) return false;
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return false;
  // A file system without flock cannot tell; the pid then decides alone.
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && (errno == EWOULDBLOCK || errno == EINTR);
  ::close(fd);
  return !held;
}

void remove_stale_temps(const std::string& target, const Parts& parts) {
  std::vector<std::pair<std::string, pid_t>> stale;
  DIR* d = ::opendir(parts.dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d))
    if (const pid_t pid = temp_owner(e->d_name, parts.base)) stale.emplace_back(e->d_name, pid);
  ::closedir(d);
  for (const auto& [name, pid] : stale) {
    const std::string p = target + name.substr(parts.base.size());
    if (!left_by_dead_run(p, pid)) continue;
    std::error_code ec;
    fs::remove_all(p, ec);
    if (ec)
      fmt::print(stderr, "upg: {}: left by an interrupted run (pid {}); cannot remove it: {}\n", p, pid, ec.message());
    else
      fmt::print(stderr, "upg: removed {}, left by an interrupted run (pid {})\n", p, pid);
  }
}

// The lock tells other runs this temp is in use (see left_by_dead_run). Where the file
// system has no flock the pid in the name still protects it.
void hold_lock(int fd) { (void)::flock(fd, LOCK_EX | LOCK_NB); }

// Makes a rename in `dir` durable: without it a power cut can forget the new name even
// though the file's data reached the disk.
void sync_dir(const std::string& dir, const std::string& target) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot open {} to sync the rename: {}", target, dir, os_error()));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  // Some file systems cannot sync a directory (EINVAL); their renames are as durable as
  // they get.
  if (rc != 0 && e != EINVAL && e != EROFS && e != ENOTSUP)
    throw Error(fmt::format("{}: written, but syncing {} failed: {}", target, dir, os_error(e)));
}

void write_loop(int fd, const char* c, size_t n, const uint64_t* offset, const std::string& target) {
  uint64_t off = offset ? *offset : 0;
  while (n > 0) {
    const ssize_t w = offset ? ::pwrite(fd, c, n, off_t(off)) : ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: write failed: {}", target, os_error()));
    }
    c += w;
    n -= size_t(w);
    off += uint64_t(w);
  }
}

}  // namespace

void prepare_output(const std::string& target, bool directory) {
  const std::string t = directory ? without_trailing_slashes(target) : target;
  const Parts parts = split(t);
  if (parts.base.empty() || parts.base == "." || parts.base == "..")
    throw Error(fmt::format("{}: not a {} name", target.empty() ? "output path" : target,
                            directory ? "directory" : "file"));
  struct stat st;
  if (::stat(parts.dir.c_str(), &st) != 0)
    throw Error(fmt::format("{}: cannot create: {}: {}", target, parts.dir, os_error()));
  if (!S_ISDIR(st.st_mode)) throw Error(fmt::format("{}: cannot create: {}: {}", target, parts.dir, os_error(ENOTDIR)));
  if (::access(parts.dir.c_str(), W_OK | X_OK) != 0)
    throw Error(fmt::format("{}: cannot create: {}: {}", target, parts.dir, os_error()));
  if (::stat(t.c_str(), &st) == 0) {
    if (directory && !S_ISDIR(st.st_mode)) throw Error(fmt::format("{}: exists and is not a directory", target));
    if (!directory && !S_ISREG(st.st_mode)) throw Error(fmt::format("{}: exists and is not a regular file", target));
  }
  remove_stale_temps(t, parts);
}

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  prepare_output(target_);
  temp_ = create_unique(target_, [&](const std::string& p) {
    fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    return fd_ >= 0;
  });
  hold_lock(fd_);
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temp_.c_str());
  if (fd_ >= 0) ::close(fd_);
}

void AtomicFile::write(const void* data, size_t n) {
  write_loop(fd_, static_cast<const char*>(data), n, nullptr, target_);
}

void AtomicFile::pwrite(const void* data, size_t n, uint64_t offset) {
  write_loop(fd_, static_cast<const char*>(data), n, &offset, target_);
}

void AtomicFile::commit() {
  if (committed_) return;
  if (fd_ < 0) throw Error(fmt::format("{}: commit after a failed commit", target_));
  if (::fsync(fd_) != 0) throw Error(fmt::format("{}: fsync of {} failed: {}", target_, temp_, os_error()));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw Error(fmt::format("{}: close of {} failed: {}", target_, temp_, os_error()));
  if (::rename(temp_.c_str(), target_.c_str()) != 0)
    throw Error(fmt::format("{}: cannot rename from {}: {}", target_, temp_, os_error()));
  committed_ = true;
  sync_dir(split(target_).dir, target_);
}

AtomicDir::AtomicDir(std::string target) : target_(without_trailing_slashes(std::move(target))) {
  prepare_output(target_, true);
  temp_ = create_unique(target_, [](const std::string& p) { return ::mkdir(p.c_str(), 0777) == 0; });
  fd_ = ::open(temp_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) {
    const int e = errno;
    ::rmdir(temp_.c_str());
    throw Error(fmt::format("{}: cannot open {}: {}", target_, temp_, os_error(e)));
  }
  hold_lock(fd_);
}

AtomicDir::~AtomicDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  if (fd_ >= 0) ::close(fd_);
}

void AtomicDir::commit() {
  if (committed_) return;
  if (::fsync(fd_) != 0 && errno != EINVAL)
    throw Error(fmt::format("{}: fsync of {} failed: {}", target_, temp_, os_error()));
  // rename(2) replaces an empty directory and refuses a non-empty one, so of two runs
  // racing for one target the second fails cleanly instead of mixing their files.
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST)
      throw Error(fmt::format("{}: already exists and is not an empty directory", target_));
    throw Error(fmt::format("{}: cannot rename from {}: {}", target_, temp_, os_error()));
  }
  committed_ = true;
  ::close(fd_);
  fd_ = -1;
  sync_dir(split(target_).dir, target_);
}

void write_file_atomic(const std::string& target, std::string_view bytes) {
  AtomicFile f(target);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

int create_scratch_file(const std::string& target) {
  int fd = -1;
  const std::string p = create_unique(target, [&](const std::string& name) {
    fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return fd >= 0;
  });
  // Unlinked at once: the space is freed when the descriptor closes, even on SIGKILL.
  ::unlink(p.c_str());
  return fd;
}

}  // namespace upg::io
