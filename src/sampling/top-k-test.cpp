#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"

namespace upg {
namespace {

using sampling::test::ids;
using sampling::test::make_list;

TEST(TopK, KeepsTheKBestSorted) {
  auto c = make_list({0.1f, 5.0f, -2.0f, 3.0f, 4.0f, 3.0f});
  c.normalized = true;
  make_top_k(3)->apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 4, 3}));
  EXPECT_TRUE(c.sorted);
  EXPECT_FALSE(c.normalized);
}

TEST(TopK, TiesAtTheCutGoToTheLowestId) {
  auto c = make_list({1.0f, 2.0f, 2.0f, 2.0f});
  make_top_k(2)->apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 2}));
}

TEST(TopK, KAtLeastSizeIsANoOp) {
  auto c = make_list({1.0f, 3.0f, 2.0f});
  c.normalized = true;
  make_top_k(3)->apply(c, {});
  make_top_k(100)->apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_FALSE(c.sorted);
  EXPECT_TRUE(c.normalized);
}

TEST(TopK, UsesAnExistingSortOrder) {
  CandidateList c;
  c.items = {{9, 5.0f, 0.0f}, {3, 4.0f, 0.0f}, {1, 1.0f, 0.0f}};
  c.sorted = true;
  make_top_k(2)->apply(c, {});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{9, 3}));
}

TEST(TopK, RejectsNonPositiveK) {
  EXPECT_THROW(make_top_k(0), Error);
  EXPECT_THROW(make_top_k(-5), Error);
  EXPECT_EQ(make_top_k(40)->describe(), "top-k(40)");
}

}  // namespace
}  // namespace upg
