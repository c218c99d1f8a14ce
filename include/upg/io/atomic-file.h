#pragma once
// Output that appears complete or not at all. Every file or directory the user asks
// for (upg compress / synth / decompress, the safetensors and GGUF writers) is built
// under a temp name beside the target, synced, renamed onto the target, and the
// directory synced, so that neither a crash nor a power cut leaves a truncated file
// under the final name.
//
// Temp names are "<target>.<pid>-<6 random characters>.tmp", created exclusively
// (O_EXCL, mkdir), so two runs writing one target never share a temp: the last rename
// wins and the target is always one run's complete output. The writer holds an flock
// on its temp for as long as it lives. A temp that nobody holds and whose pid is not a
// live process was left by a killed run (SIGKILL, power cut): the next write to the
// same target removes it and says so in one line on stderr. A temp whose owner may be
// alive is never touched.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace upg::io {

// Checks that `target` can be written now, and removes the temps of earlier killed runs
// writing the same target. Throws upg::Error("<target>: cannot create: <dir>: <OS
// reason>") when the target's directory is missing, not a directory or not writable,
// and "<target>: ..." when the target exists as something that is not a regular file
// (with `directory`: not a directory). Called by AtomicFile and AtomicDir; a long job
// calls it before the work starts, so a bad output path fails in seconds, not after it.
void prepare_output(const std::string& target, bool directory = false);

// A file written under a temp name and renamed onto `target` by commit(). Destroying it
// without commit() removes the temp. Errors throw upg::Error naming the target.
class AtomicFile {
 public:
  explicit AtomicFile(std::string target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_; }
  const std::string& target() const { return target_; }
  const std::string& temp_path() const { return temp_; }

  // Appends, or writes at `offset`; short writes and EINTR are retried.
  void write(const void* data, size_t n);
  void pwrite(const void* data, size_t n, uint64_t offset);
  // fsync, close, rename onto the target, fsync the directory. Once only.
  void commit();

 private:
  std::string target_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// A directory built under a temp name (path()) and renamed onto `target` by commit();
// `target` must not exist or be an empty directory, which the rename replaces. Files
// inside are written with AtomicFile or write_file_atomic (so each is synced).
// Destroying it without commit() removes the temp directory and its contents.
class AtomicDir {
 public:
  explicit AtomicDir(std::string target);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  const std::string& path() const { return temp_; }
  const std::string& target() const { return target_; }
  void commit();

 private:
  std::string target_, temp_;
  int fd_ = -1;  // holds the flock
  bool committed_ = false;
};

// Writes `bytes` to `target` through an AtomicFile.
void write_file_atomic(const std::string& target, std::string_view bytes);

// An anonymous scratch file on the target's file system (so data can later be copied
// into the target's temp by reflink): created under a temp name and unlinked at once.
// Returns the descriptor (O_RDWR, close-on-exec).
int create_scratch_file(const std::string& target);

}  // namespace upg::io
