#include "engine/stop-strings.h"

#include <gtest/gtest.h>

namespace upg {
namespace {

TEST(StopStrings, PassesTextWithoutStops) {
  StopStringFilter f({});
  EXPECT_EQ(f.push("hello "), "hello ");
  EXPECT_EQ(f.push("world"), "world");
  EXPECT_EQ(f.flush(), "");
  EXPECT_FALSE(f.stopped());
}

TEST(StopStrings, HoldsBackAPossiblePrefixAndReleasesIt) {
  StopStringFilter f({"STOP"});
  EXPECT_EQ(f.push("abc ST"), "abc ");  // "ST" could start "STOP"
  EXPECT_EQ(f.push("ay"), "STay");      // it did not
  EXPECT_FALSE(f.stopped());
  EXPECT_EQ(f.push("xS"), "x");
  EXPECT_EQ(f.flush(), "S");
}

TEST(StopStrings, StopsOnAStopSplitOverPieces) {
  StopStringFilter f({"</s>", "User:"});
  EXPECT_EQ(f.push("answer. Us"), "answer. ");
  EXPECT_EQ(f.push("er: more"), "");
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.push("ignored"), "");
  EXPECT_EQ(f.flush(), "");
}

TEST(StopStrings, EarliestStopWins) {
  StopStringFilter f({"b", "a"});
  EXPECT_EQ(f.push("xxaxb"), "xx");
  EXPECT_TRUE(f.stopped());
}

}  // namespace
}  // namespace upg
