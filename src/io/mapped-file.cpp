#include "io/mapped-file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::io {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("{}: not a regular file", path));
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = uint64_t(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error(fmt::format("{}: mmap failed: {}", path, std::strerror(e)));
    }
    f->data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);
  return f;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(const std::string& path, const void* bytes, size_t size) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size;
  f->owned_.reset(new std::byte[size]);
  if (size > 0) std::memcpy(f->owned_.get(), bytes, size);
  f->data_ = f->owned_.get();
  return f;
}

void MappedFile::drop_pages(const std::byte* p, size_t n) const {
  if (owned_ || !data_ || p < data_ || n == 0 || !contains(uint64_t(p - data_), n)) return;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  // Inward, to the whole pages inside: the pages at either end may hold a neighbour read
  // in place (a norm), and dropping those cost more than it saved, since that read maps
  // back up to 16 pages around it from the page cache (fault-around; docs/BENCHMARKS.md,
  // issue 24).
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // a failure only keeps them
}

MappedFile::~MappedFile() {
  if (data_ && !owned_) munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace upg::io
