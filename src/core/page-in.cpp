#include "upg/core/page-in.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels answer EINVAL
#endif

namespace upg {

void page_in(const void* p, size_t n) {
  if (!p || n == 0) return;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page;
  void* start = reinterpret_cast<void*>(begin);
  if (madvise(start, end - begin, MADV_POPULATE_READ) != 0) madvise(start, end - begin, MADV_WILLNEED);
}

}  // namespace upg
