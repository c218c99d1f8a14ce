#include <cmath>

#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"

namespace upg {
namespace {

using sampling::test::ids;
using sampling::test::make_list;

// Probabilities 0.5, 0.25, 0.125, 0.125 (in id order 2, 0, 1, 3).
CandidateList quarter_list() {
  return make_list({std::log(0.25f), std::log(0.125f), std::log(0.5f), std::log(0.125f)});
}

TEST(TopP, KeepsSmallestPrefixReachingP) {
  auto c = quarter_list();
  make_top_p(0.7f)->apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{2, 0}));
  EXPECT_TRUE(c.sorted);
  EXPECT_FALSE(c.normalized);

  auto d = quarter_list();
  make_top_p(0.8f)->apply(d, {});
  EXPECT_EQ(ids(d), (std::vector<int32_t>{2, 0, 1}));
}

TEST(TopP, AlwaysKeepsAtLeastOne) {
  auto c = quarter_list();
  make_top_p(0.01f)->apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{2}));
}

TEST(TopP, OneKeepsEverything) {
  auto c = quarter_list();
  make_top_p(1.0f)->apply(c, {});
  EXPECT_EQ(c.items.size(), 4u);
}

TEST(TopP, RejectsOutOfRange) {
  EXPECT_THROW(make_top_p(0.0f), Error);
  EXPECT_THROW(make_top_p(-0.5f), Error);
  EXPECT_THROW(make_top_p(1.5f), Error);
  EXPECT_THROW(make_top_p(NAN), Error);
  try {
    make_top_p(1.5f);
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "top_p: must be in (0, 1], got 1.5");
  }
}

}  // namespace
}  // namespace upg
