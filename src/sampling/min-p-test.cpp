#include <cmath>

#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"

namespace upg {
namespace {

using sampling::test::ids;
using sampling::test::make_list;

// Probabilities proportional to 8, 1, 4, 2, 3 (max 8).
CandidateList list() {
  return make_list({std::log(8.0f), std::log(1.0f), std::log(4.0f), std::log(2.0f),
                    std::log(3.0f)});
}

TEST(MinP, KeepsThoseAboveFractionOfMax) {
  auto c = list();
  make_min_p(0.3f)->apply(c, {});  // cut at 2.4/18: keeps 8, 4, 3
  EXPECT_EQ(ids(c), (std::vector<int32_t>{0, 2, 4}));
  EXPECT_FALSE(c.normalized);
}

TEST(MinP, PreservesSortedOrder) {
  auto c = list();
  make_top_k(4)->apply(c, {});  // sorts and drops the 1
  make_min_p(0.2f)->apply(c, {});  // cut 1.6: keeps 8, 4, 3, 2
  EXPECT_EQ(ids(c), (std::vector<int32_t>{0, 2, 4, 3}));
  EXPECT_TRUE(c.sorted);
}

TEST(MinP, OneKeepsOnlyTheMaxAndAlwaysAtLeastOne) {
  auto c = list();
  make_min_p(1.0f)->apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{0}));
}

TEST(MinP, ZeroIsANoOp) {
  auto c = list();
  make_min_p(0.0f)->apply(c, {});
  EXPECT_EQ(c.items.size(), 5u);
}

TEST(MinP, RejectsOutOfRange) {
  EXPECT_THROW(make_min_p(-0.1f), Error);
  EXPECT_THROW(make_min_p(1.1f), Error);
  EXPECT_THROW(make_min_p(NAN), Error);
}

}  // namespace
}  // namespace upg
