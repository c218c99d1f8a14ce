#include "engine/prompt-lookup.h"

#include <vector>

#include <gtest/gtest.h>

#include "upg/core/error.h"

namespace upg {
namespace {

std::vector<int32_t> propose(const std::vector<int32_t>& ctx, LookupParams p) {
  std::vector<int32_t> d;
  propose_lookup(ctx, p, d);
  return d;
}

TEST(PromptLookup, ProposesWhatFollowedTheMostRecentMatch) {
  // "1 2 3" occurs twice before the suffix "2 3": the later one (followed by 7 8) wins.
  const std::vector<int32_t> ctx{1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 6, 2, 3};
  EXPECT_EQ(propose(ctx, {3, 1, 3}), (std::vector<int32_t>{7, 8, 6}));
  // Past the end of the context the continuation repeats with its period (5 here).
  EXPECT_EQ(propose(ctx, {3, 1, 8}), (std::vector<int32_t>{7, 8, 6, 2, 3, 7, 8, 6}));
}

TEST(PromptLookup, PrefersTheLongestSuffix) {
  // The 1-gram "5" last occurred before 9, the 2-gram "4 5" before 6: the 2-gram decides.
  const std::vector<int32_t> ctx{4, 5, 6, 6, 5, 9, 4, 5};
  EXPECT_EQ(propose(ctx, {2, 1, 2}), (std::vector<int32_t>{6, 6}));
  EXPECT_EQ(propose(ctx, {1, 1, 2}), (std::vector<int32_t>{9, 4}));
}

TEST(PromptLookup, NothingWithoutAnEarlierMatchAndRunsContinue) {
  EXPECT_TRUE(propose({1, 2, 3, 4}, {3, 1, 4}).empty());
  EXPECT_TRUE(propose({}, {3, 1, 4}).empty());
  EXPECT_TRUE(propose({7}, {3, 1, 4}).empty());
  EXPECT_TRUE(propose({7, 7}, {3, 1, 0}).empty());  // max_draft 0
  // A run of one token continues itself.
  EXPECT_EQ(propose({7, 7}, {3, 1, 4}), (std::vector<int32_t>{7, 7, 7, 7}));
  EXPECT_EQ(propose({1, 7, 7, 7}, {2, 1, 3}), (std::vector<int32_t>{7, 7, 7}));
}

TEST(PromptLookup, ChecksItsParameters) {
  EXPECT_THROW(check_lookup_params({3, 0, 4}), ParamError);
  EXPECT_THROW(check_lookup_params({1, 2, 4}), ParamError);
  EXPECT_THROW(check_lookup_params({3, 1, -1}), ParamError);
  EXPECT_NO_THROW(check_lookup_params({3, 1, 0}));
}

}  // namespace
}  // namespace upg
