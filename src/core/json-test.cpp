#include "upg/core/json.h"

#include <gtest/gtest.h>

#include <string>

namespace upg {
namespace {

std::string nested(int levels, char open = '[', char close = ']') {
  return "{\"a\":" + std::string(size_t(levels), open) + std::string(size_t(levels), close) + "}";
}

TEST(Json, DepthLimitCountsBracketsOutsideStrings) {
  EXPECT_FALSE(json_depth_problem(nested(kMaxJsonDepth - 1)));
  auto why = json_depth_problem(nested(kMaxJsonDepth));
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("nested deeper than 64 levels"), std::string::npos) << *why;
  // Brackets inside strings, escaped quotes included, are text.
  const std::string in_string = "{\"a\":\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
  EXPECT_FALSE(json_depth_problem(in_string));
}

TEST(Json, ParseRejectsHostileNestingWithoutRecursing) {
  // 200k levels: nlohmann would build it, then overflow the stack copying or dumping it.
  const std::string deep = nested(200000);
  try {
    parse_json(deep, "f.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "f.json: not valid JSON: nested deeper than 64 levels (at byte 68)");
  }
  EXPECT_TRUE(parse_json_or_discard(deep).is_discarded());
  EXPECT_TRUE(parse_json_or_discard("{bad").is_discarded());
  EXPECT_EQ(parse_json("{\"a\":[[1]]}", "f")["a"][0][0], 1);
}

TEST(Json, ParseErrorNamesOrigin) {
  try {
    parse_json("{\"a\": ", "dir/config.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("dir/config.json: not valid JSON: ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace upg
