#include "upg/core/file-text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

std::string read_file_text(const std::string& path, std::string_view what, size_t max_bytes) {
  auto fail = [&](std::string_view why) { throw Error(fmt::format("{}: cannot read {}: {}", path, what, why)); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("it is a directory");
  // Devices and pipes report no size, so the limit is enforced on what is read, not on
  // what fstat says.
  std::string out;
  if (S_ISREG(st.st_mode)) {
    if (uint64_t(st.st_size) > max_bytes)
      fail(fmt::format("{} bytes is over the limit of {} bytes", st.st_size, max_bytes));
    out.reserve(size_t(st.st_size));
  }
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(std::strerror(errno));
    if (r == 0) break;
    if (out.size() + size_t(r) > max_bytes) fail(fmt::format("more than the limit of {} bytes", max_bytes));
    out.append(buf, size_t(r));
  }
  return out;
}

}  // namespace upg
