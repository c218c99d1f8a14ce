#include "sampling/candidates.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "sampling/test-lists.h"

namespace upg::sampling {
namespace {

using test::ids;
using test::make_list;
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Candidates, SortIsDescendingWithIdTieBreak) {
  auto c = make_list({1.0f, 3.0f, 1.0f, 2.0f, 3.0f});
  ensure_sorted(c);
  EXPECT_TRUE(c.sorted);
  EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 4, 3, 0, 2}));
}

TEST(Candidates, SoftmaxMatchesClosedForm) {
  auto c = make_list({0.0f, std::log(2.0f), std::log(5.0f)});
  ensure_normalized(c);
  EXPECT_TRUE(c.normalized);
  EXPECT_NEAR(c.items[0].p, 1.0 / 8, 1e-6);
  EXPECT_NEAR(c.items[1].p, 2.0 / 8, 1e-6);
  EXPECT_NEAR(c.items[2].p, 5.0 / 8, 1e-6);
}

TEST(Candidates, SoftmaxIsStableForHugeLogits) {
  auto c = make_list({1000.0f, 1000.0f, -1000.0f});
  ensure_normalized(c);
  EXPECT_FLOAT_EQ(c.items[0].p, 0.5f);
  EXPECT_FLOAT_EQ(c.items[1].p, 0.5f);
  EXPECT_FLOAT_EQ(c.items[2].p, 0.0f);
}

TEST(Candidates, SoftmaxDegenerateInputsStayFinite) {
  auto all_neg = make_list({-kInf, -kInf, -kInf, -kInf});
  ensure_normalized(all_neg);
  for (const auto& it : all_neg.items) EXPECT_FLOAT_EQ(it.p, 0.25f);

  auto pos = make_list({1.0f, kInf, 2.0f, kInf});
  ensure_normalized(pos);
  EXPECT_EQ(pos.items[0].p, 0.0f);
  EXPECT_EQ(pos.items[1].p, 0.5f);
  EXPECT_EQ(pos.items[2].p, 0.0f);
  EXPECT_EQ(pos.items[3].p, 0.5f);
}

TEST(Candidates, BestIndexPrefersLowestIdOnTies) {
  auto c = make_list({1.0f, 5.0f, 2.0f, 5.0f});
  EXPECT_EQ(best_index(c), 1u);
}

}  // namespace
}  // namespace upg::sampling
