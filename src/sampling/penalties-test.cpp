#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"

namespace upg {
namespace {

using sampling::test::logits;
using sampling::test::make_list;

TEST(Penalties, RepeatDividesPositiveAndMultipliesNegative) {
  auto c = make_list({2.0f, -2.0f, 4.0f, 0.0f});
  auto step = make_penalties(2.0f, 0.0f, 0.0f, -1);
  const std::vector<int32_t> hist{0, 1, 3};
  step->apply(c, hist);
  EXPECT_EQ(logits(c), (std::vector<float>{1.0f, -4.0f, 4.0f, 0.0f}));
}

TEST(Penalties, FrequencyScalesWithCountPresenceOnce) {
  auto c = make_list({1.0f, 1.0f, 1.0f});
  auto step = make_penalties(1.0f, 0.5f, 0.25f, -1);
  const std::vector<int32_t> hist{0, 0, 0, 2};
  step->apply(c, hist);
  // id 0: 1 - 3*0.5 - 0.25; id 1 untouched; id 2: 1 - 0.5 - 0.25.
  EXPECT_EQ(logits(c), (std::vector<float>{-0.75f, 1.0f, 0.25f}));
}

TEST(Penalties, RepeatAndFrequencyCombineLikeLlamaCpp) {
  auto c = make_list({3.0f});
  make_penalties(1.5f, 0.5f, 1.0f, -1)->apply(c, std::vector<int32_t>{0, 0});
  EXPECT_FLOAT_EQ(c.items[0].logit, 3.0f / 1.5f - 2 * 0.5f - 1.0f);
}

TEST(Penalties, WindowOnlySeesTheLastNTokens) {
  const std::vector<int32_t> hist{0, 0, 1, 2};
  auto c = make_list({1.0f, 1.0f, 1.0f});
  make_penalties(1.0f, 1.0f, 0.0f, 2)->apply(c, hist);
  EXPECT_EQ(logits(c), (std::vector<float>{1.0f, 0.0f, 0.0f}));

  auto all = make_list({1.0f, 1.0f, 1.0f});
  make_penalties(1.0f, 1.0f, 0.0f, -1)->apply(all, hist);
  EXPECT_EQ(logits(all), (std::vector<float>{-1.0f, 0.0f, 0.0f}));

  auto off = make_list({1.0f, 1.0f, 1.0f});
  make_penalties(2.0f, 1.0f, 1.0f, 0)->apply(off, hist);
  EXPECT_EQ(logits(off), (std::vector<float>{1.0f, 1.0f, 1.0f}));

  // A window longer than the history covers all of it.
  auto big = make_list({1.0f, 1.0f, 1.0f});
  make_penalties(1.0f, 1.0f, 0.0f, 100)->apply(big, hist);
  EXPECT_EQ(logits(big), logits(all));
}

TEST(Penalties, WorksOnReorderedListsAndSkipsUnknownIds) {
  // As if top-k had run first: ids out of position, some dropped.
  CandidateList c;
  c.items = {{7, 4.0f, 0.0f}, {2, 3.0f, 0.0f}};
  c.sorted = true;
  c.normalized = true;
  make_penalties(2.0f, 0.0f, 0.0f, -1)->apply(c, std::vector<int32_t>{2, 5, -3, 1000000});
  EXPECT_EQ(c.items[0].logit, 4.0f);
  EXPECT_EQ(c.items[1].logit, 1.5f);
  EXPECT_FALSE(c.sorted);
  EXPECT_FALSE(c.normalized);
}

TEST(Penalties, EmptyHistoryChangesNothing) {
  auto c = make_list({1.0f, 2.0f});
  c.sorted = false;
  c.normalized = true;
  make_penalties(2.0f, 1.0f, 1.0f, -1)->apply(c, {});
  EXPECT_EQ(logits(c), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_TRUE(c.normalized);
}

TEST(Penalties, RejectsBadParameters) {
  EXPECT_THROW(make_penalties(0.0f, 0.0f, 0.0f, 64), Error);
  EXPECT_THROW(make_penalties(-1.0f, 0.0f, 0.0f, 64), Error);
  EXPECT_THROW(make_penalties(1.0f, NAN, 0.0f, 64), Error);
  EXPECT_THROW(make_penalties(1.0f, 0.0f, INFINITY, 64), Error);
  EXPECT_THROW(make_penalties(1.0f, 0.0f, 0.0f, -2), Error);
}

}  // namespace
}  // namespace upg
