#include "upg/core/file-text.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "upg/core/error.h"

namespace upg {
namespace {

std::string error_of(const std::string& path, size_t limit = kMaxTextFileBytes) {
  try {
    read_file_text(path, "the prompt file", limit);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(FileText, ReadsAWholeFile) {
  const auto path = std::filesystem::temp_directory_path() / ("upg-file-text-" + std::to_string(::getpid()));
  std::string text(200000, 'x');
  text += std::string("\n\0end", 5);
  std::ofstream(path, std::ios::binary) << text;
  EXPECT_EQ(read_file_text(path.string(), "t"), text);
  EXPECT_EQ(error_of(path.string(), 1000), path.string() + ": cannot read the prompt file: 200005 bytes is over the limit of 1000 bytes");
  std::filesystem::remove(path);
}

TEST(FileText, DirectoryIsAnError) {
  // Read as an empty prompt before.
  EXPECT_EQ(error_of("/tmp"), "/tmp: cannot read the prompt file: it is a directory");
}

TEST(FileText, EndlessDeviceStopsAtTheLimit) {
  // /dev/zero reports no size; it was read until memory ran out.
  EXPECT_EQ(error_of("/dev/zero", 1 << 20), "/dev/zero: cannot read the prompt file: more than the limit of 1048576 bytes");
}

TEST(FileText, MissingFile) {
  EXPECT_EQ(error_of("/nonexistent/p.txt"), "/nonexistent/p.txt: cannot read the prompt file: No such file or directory");
}

}  // namespace
}  // namespace upg
