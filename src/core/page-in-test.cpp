// page_in maps a file's pages before they are read: touching them afterwards takes
// (almost) no page faults, where touching a fresh mapping takes one per fault-around
// window.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "upg/core/page-in.h"

namespace upg {
namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Minor faults taken while reading one byte of each page of a fresh mapping of `path`,
// after page_in of the whole mapping when `populate`.
long faults_touching(const std::string& path, size_t size, bool populate) {
  FILE* f = std::fopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr);
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fileno(f), 0);
  std::fclose(f);
  EXPECT_NE(p, MAP_FAILED);
  if (populate) page_in(static_cast<const char*>(p) + 100, size - 200);  // unaligned ends
  const long before = minor_faults();
  // Volatile reads: each page is read, whatever the optimizer makes of the sum.
  uint64_t sum = 0;
  for (size_t i = 0; i < size; i += 4096) sum += static_cast<const volatile uint8_t*>(p)[i];
  const long taken = minor_faults() - before;
  munmap(p, size);
  EXPECT_EQ(sum, uint64_t('x') * (size / 4096));  // the file holds 'x' everywhere
  return taken;
}

TEST(PageIn, MappedPagesNeedNoFaultsAfterward) {
  // Before Linux 5.14 page_in can only ask for readahead, which maps nothing.
  void* probe = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(probe, MAP_FAILED);
  const bool populate_read = madvise(probe, 4096, 22 /* MADV_POPULATE_READ */) == 0;
  munmap(probe, 4096);
  if (!populate_read) GTEST_SKIP() << "this kernel has no MADV_POPULATE_READ";
  const size_t size = 4 << 20;  // 1024 pages
  const std::string path = (std::filesystem::temp_directory_path() / ("upg-page-in-" + std::to_string(getpid()))).string();
  {
    std::ofstream out(path, std::ios::binary);
    std::string block(4096, 'x');
    for (size_t i = 0; i < size; i += block.size()) out << block;
  }
  faults_touching(path, size, false);  // the file in the page cache: later faults are minor
  const long fresh = faults_touching(path, size, false);
  const long populated = faults_touching(path, size, true);
  std::filesystem::remove(path);
  // Fault-around maps up to 16 pages per fault: at least 64 faults for 1024 pages.
  EXPECT_GE(fresh, 32) << "the mapping was already populated: the test cannot tell";
  EXPECT_LE(populated, fresh / 8) << "fresh " << fresh << ", after page_in " << populated;
}

TEST(PageIn, NullAndEmptyRangesAreNoOps) {
  page_in(nullptr, 100);
  int x = 0;
  page_in(&x, 0);
  page_in(&x, sizeof x);  // heap or stack memory: already mapped
  SUCCEED();
}

}  // namespace
}  // namespace upg
