// The token mask (a grammar's) as the chain's first step.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"
#include "upg/sampling/sampling.h"

namespace upg {
namespace {

using sampling::test::plain;

std::vector<uint32_t> mask_of(size_t vocab, std::initializer_list<int> ids) {
  std::vector<uint32_t> m((vocab + 31) / 32, 0);
  for (int id : ids) m[size_t(id) / 32] |= 1u << (id % 32);
  return m;
}

TEST(TokenMask, GreedyTakesTheBestAllowedToken) {
  Sampler s(plain(0.0f));
  std::vector<float> logits(70, 0.0f);
  logits[3] = 9.0f;
  logits[40] = 2.0f;
  logits[65] = 5.0f;
  EXPECT_EQ(s.sample(logits, {}, mask_of(70, {40, 65})), 65);
  EXPECT_EQ(s.sample(logits, {}, mask_of(70, {40, 1})), 40);
  EXPECT_EQ(s.sample(logits, {}), 3);  // no mask
}

TEST(TokenMask, DistributionIsTheSoftmaxOverAllowedTokens) {
  Sampler s(plain(1.0f));
  const std::vector<float> logits{1.0f, 2.0f, 3.0f, 4.0f, 0.5f};
  const auto& d = s.distribution(logits, {}, mask_of(5, {0, 2, 4}));
  ASSERT_EQ(d.items.size(), 3u);
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(0.5);
  for (const auto& c : d.items) {
    ASSERT_TRUE(c.id == 0 || c.id == 2 || c.id == 4) << c.id;
    EXPECT_NEAR(c.p, std::exp(double(logits[size_t(c.id)])) / z, 1e-6);
  }
  for (int i = 0; i < 300; ++i) {
    const int32_t t = s.sample(logits, {}, mask_of(5, {1, 4}));
    EXPECT_TRUE(t == 1 || t == 4) << t;
  }
}

TEST(TokenMask, TopKCountsOnlyAllowedTokens) {
  auto p = plain(1.0f);
  p.top_k = 1;  // the best allowed token, not the best token
  Sampler s(p);
  const std::vector<float> logits{9.0f, 1.0f, 2.0f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits, {}, mask_of(3, {1, 2})), 2);
}

TEST(TokenMask, EmptyOrShortMasksAreErrors) {
  Sampler s(plain(0.0f));
  const std::vector<float> logits(40, 1.0f);
  EXPECT_THROW(s.sample(logits, {}, mask_of(40, {})), Error);
  const std::vector<uint32_t> short_mask(1, ~0u);  // 32 tokens for 40 logits
  EXPECT_THROW(s.sample(logits, {}, short_mask), Error);
}

}  // namespace
}  // namespace upg
