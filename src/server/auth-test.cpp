#include "server/auth.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "upg/core/error.h"

namespace upg::server {
namespace {

TEST(Auth, Bearer) {
  const std::vector<std::string> keys = {"sk-one", "sk-two"};
  EXPECT_TRUE(authorized("Bearer sk-one", keys));
  EXPECT_TRUE(authorized("Bearer sk-two", keys));
  EXPECT_FALSE(authorized("Bearer sk-on", keys));
  EXPECT_FALSE(authorized("Bearer sk-one1", keys));
  EXPECT_FALSE(authorized("Bearer ", keys));
  EXPECT_FALSE(authorized("sk-one", keys));
  EXPECT_FALSE(authorized("Basic sk-one", keys));
  EXPECT_FALSE(authorized("", keys));
  EXPECT_FALSE(authorized("Bearer sk-one", {}));
}

TEST(Auth, KeyFile) {
  const auto path = std::filesystem::temp_directory_path() / "upg-auth-test-keys";
  {
    std::ofstream f(path);
    f << "# keys\n  sk-a  \n\nsk-b\r\n";
  }
  EXPECT_EQ(read_api_keys(path.string()), (std::vector<std::string>{"sk-a", "sk-b"}));
  {
    std::ofstream f(path);
    f << "# none\n\n";
  }
  EXPECT_THROW(read_api_keys(path.string()), Error);
  std::filesystem::remove(path);
  EXPECT_THROW(read_api_keys(path.string()), Error);
}

}  // namespace
}  // namespace upg::server
