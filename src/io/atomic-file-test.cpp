// Output files appear complete or not at all: unique exclusive temps, the rename and
// the directory sync, temps of killed runs removed (and only theirs), and an unwritable
// target named in one line before anything is written.
#include "upg/io/atomic-file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/atomic-file-test-util.h"
#include "io/safetensors-test-util.h"
#include "upg/core/error.h"

namespace {

// Every fsync of the test binary passes through here (the definition in the executable
// takes precedence over libc's), so a test can see which directories were synced and
// whether the target had its final name by then.
struct SyncWatch {
  bool on = false;
  std::string target;
  std::vector<bool> dir_syncs;  // per directory fsync: did the target exist?
};
SyncWatch g_watch;

}  // namespace

extern "C" int fsync(int fd) {
  struct stat st;
  if (g_watch.on && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
    g_watch.dir_syncs.push_back(::access(g_watch.target.c_str(), F_OK) == 0);
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

namespace upg::io {
namespace {

namespace fs = std::filesystem;
using testing::dead_pid;
using testing::dir_entries;
using testing::expect_error;
using testing::read_file;
using testing::temp_name;
using testing::TempDir;

bool is_temp_of(const std::string& name, const std::string& base) {
  return name.starts_with(base + "." + std::to_string(::getpid()) + "-") && name.ends_with(".tmp") &&
         name.size() == base.size() + 1 + std::to_string(::getpid()).size() + 1 + 6 + 4;
}

TEST(AtomicFile, CommitRenamesAndLeavesNoTemp) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  {
    AtomicFile f(target);
    EXPECT_TRUE(is_temp_of(fs::path(f.temp_path()).filename().string(), "out.bin")) << f.temp_path();
    EXPECT_EQ(fs::path(f.temp_path()).parent_path(), dir.path());
    EXPECT_FALSE(fs::exists(target));
    f.write("hello ", 6);
    f.pwrite("world", 5, 6);
    f.commit();
  }
  EXPECT_EQ(read_file(target), "hello world");
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"out.bin"});
  // A second write replaces the first as a whole.
  write_file_atomic(target, "second");
  EXPECT_EQ(read_file(target), "second");
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFile, TwoWritersToOneTargetDoNotClash) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  AtomicFile a(target), b(target);
  EXPECT_NE(a.temp_path(), b.temp_path());
  // Interleaved, as two runs would be: each temp holds only its own writer's bytes.
  a.write("aaaa", 4);
  b.write("bbbbbbbb", 8);
  a.write("AAAA", 4);
  a.commit();
  EXPECT_EQ(read_file(target), "aaaaAAAA");
  b.write("B", 1);
  b.commit();  // the last rename wins, with a complete file
  EXPECT_EQ(read_file(target), "bbbbbbbbB");
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFile, UncommittedOrFailedWriteLeavesNothing) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  {
    AtomicFile f(target);
    f.write("partial", 7);
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
  // Writing fails mid-way (the file size limit is hit): the error names the target and
  // the temp goes away with the writer. In a child, since the limit is per process.
  EXPECT_EQ(testing::exit_code_past_size_limit(4096, target, [&] { write_file_atomic(target, std::string(65536, 'x')); }), 0)
      << "2: message lacks target or reason, 3: no error";
  EXPECT_TRUE(fs::is_empty(dir.path())) << dir_entries(dir.path()).size();
}

TEST(AtomicFile, DirectorySyncedAfterRename) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  g_watch = {true, target, {}};
  write_file_atomic(target, "x");
  g_watch.on = false;
  // Without the sync of the directory after the rename, a power cut can lose the name.
  ASSERT_FALSE(g_watch.dir_syncs.empty());
  EXPECT_TRUE(g_watch.dir_syncs.back());

  const std::string out_dir = dir.file("model");
  g_watch = {true, out_dir, {}};
  {
    AtomicDir d(out_dir);
    write_file_atomic(d.path() + "/config.json", "{}");
    d.commit();
  }
  g_watch.on = false;
  ASSERT_FALSE(g_watch.dir_syncs.empty());
  EXPECT_TRUE(g_watch.dir_syncs.back());
  EXPECT_EQ(read_file(out_dir + "/config.json"), "{}");
}

TEST(AtomicFile, UnwritableTargetNamesItInOneLine) {
  TempDir dir;
  const std::string missing = dir.file("no-such-dir/out.bin");
  expect_error([&] { AtomicFile f(missing); }, {missing, "No such file or directory"});
  expect_error([&] { prepare_output(missing); }, {missing, "No such file or directory"});
  testing::write_file(dir.file("plain"), "x");
  const std::string under_file = dir.file("plain/out.bin");
  expect_error([&] { write_file_atomic(under_file, "x"); }, {under_file, "Not a directory"});
  fs::create_directory(dir.file("sub"));
  expect_error([&] { write_file_atomic(dir.file("sub"), "x"); }, {dir.file("sub"), "not a regular file"});
  expect_error([&] { AtomicDir d(dir.file("plain")); }, {dir.file("plain"), "not a directory"});
  expect_error([&] { AtomicDir d(dir.file("no-such-dir/model")); }, {"no-such-dir/model", "No such file"});
  if (::geteuid() != 0) {  // root writes through any mode bits
    fs::create_directory(dir.file("ro"));
    fs::permissions(dir.file("ro"), fs::perms::owner_read | fs::perms::owner_exec);
    const std::string ro = dir.file("ro/out.bin");
    expect_error([&] { write_file_atomic(ro, "x"); }, {ro, "Permission denied"});
    fs::permissions(dir.file("ro"), fs::perms::owner_all);
  }
}

TEST(AtomicFile, TempsOfDeadRunsAreRemovedAndReported) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  const pid_t dead = dead_pid();
  const std::string stale_file = temp_name(target, dead), stale_dir = temp_name(target, dead, "dir123");
  testing::write_file(stale_file, "60 MB of an interrupted run");
  fs::create_directory(stale_dir);
  testing::write_file(stale_dir + "/model.safetensors", "x");
  // Kept: a live pid (this one), a temp still locked by its writer, another target's.
  const std::string live = temp_name(target, ::getpid(), "live01");
  const std::string locked = temp_name(target, dead, "lock01");
  const std::string other = temp_name(dir.file("other.bin"), dead);
  const std::string not_temp = target + ".12-ab.tmp";
  for (const auto& p : {live, locked, other, not_temp}) testing::write_file(p, "keep");
  const int lock_fd = ::open(locked.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(::flock(lock_fd, LOCK_EX), 0);

  ::testing::internal::CaptureStderr();
  write_file_atomic(target, "new");
  const std::string err = ::testing::internal::GetCapturedStderr();
  ::close(lock_fd);

  EXPECT_FALSE(fs::exists(stale_file));
  EXPECT_FALSE(fs::exists(stale_dir));
  for (const auto& p : {live, locked, other, not_temp}) EXPECT_TRUE(fs::exists(p)) << p;
  EXPECT_EQ(read_file(target), "new");
  // One line per removed temp, naming it and why.
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;
  EXPECT_NE(err.find("removed " + stale_file + ", left by an interrupted run (pid " + std::to_string(dead) + ")"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(stale_dir), std::string::npos) << err;
}

TEST(AtomicFile, TempOfAKilledWriterIsRemovedByTheNextRun) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    try {
      AtomicFile f(target);
      f.write("half of it", 10);
      (void)!::write(ready[1], "r", 1);
      ::pause();  // until SIGKILL: no destructor runs
    } catch (...) {  // a child must never return into the test runner
    }
    ::_exit(1);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  const std::vector<std::string> during = dir_entries(dir.path());
  ASSERT_EQ(during.size(), 1u);
  // The writer is alive and holds its temp: a concurrent run leaves it alone.
  write_file_atomic(dir.file("unrelated.bin"), "x");
  prepare_output(target);
  EXPECT_TRUE(fs::exists(dir.path() / during[0]));

  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(fs::exists(dir.path() / during[0]));  // what SIGKILL leaves behind

  ::testing::internal::CaptureStderr();
  write_file_atomic(target, "done");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(during[0]), std::string::npos) << err;
  EXPECT_EQ(dir_entries(dir.path()), (std::vector<std::string>{"out.bin", "unrelated.bin"}));
}

TEST(AtomicDir, BuildsUnderATempNameAndRefusesANonEmptyTarget) {
  TempDir dir;
  const std::string target = dir.file("model");
  {
    AtomicDir d(target + "/");  // "model/" names "model"
    EXPECT_TRUE(is_temp_of(fs::path(d.path()).filename().string(), "model")) << d.path();
    write_file_atomic(d.path() + "/a.txt", "a");
    // Not committed: the temp directory and its files go.
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));

  fs::create_directory(target);  // an empty directory is replaced
  AtomicDir a(target), b(target);
  write_file_atomic(a.path() + "/a.txt", "a");
  write_file_atomic(b.path() + "/b.txt", "b");
  a.commit();
  // Two runs racing for one directory: the second fails cleanly, nothing is mixed.
  expect_error([&] { b.commit(); }, {target, "not an empty directory"});
  EXPECT_EQ(dir_entries(target), std::vector<std::string>{"a.txt"});
}

TEST(AtomicFile, ScratchFileIsAnonymous) {
  TempDir dir;
  const int fd = create_scratch_file(dir.file("out.bin"));
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::write(fd, "abc", 3), 3);
  EXPECT_TRUE(fs::is_empty(dir.path()));
  ::close(fd);
  expect_error([&] { create_scratch_file(dir.file("no-such-dir/out.bin")); },
               {dir.file("no-such-dir/out.bin"), "No such file"});
}

}  // namespace
}  // namespace upg::io
