#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"
#include "upg/sampling/sampling.h"

namespace upg {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

using sampling::test::plain;

TEST(Sampler, GreedyTakesArgmaxLowestIdOnTies) {
  Sampler s(plain(0.0f));
  const std::vector<float> logits{1.0f, 7.0f, 3.0f, 7.0f};
  EXPECT_EQ(s.sample(logits, {}), 1);
  EXPECT_EQ(s.describe(), "greedy");
}

TEST(Sampler, GreedyAppliesPenalties) {
  auto p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  const std::vector<float> logits{1.0f, 3.0f, 2.0f};
  const std::vector<int32_t> hist{1};
  EXPECT_EQ(s.sample(logits, hist), 2);  // 3/2 = 1.5 < 2
  EXPECT_EQ(s.sample(logits, {}), 1);
  EXPECT_EQ(s.describe(), "penalties(repeat=2.00) -> greedy");
}

TEST(Sampler, GreedyIgnoresTruncationSteps) {
  SamplingParams p;  // defaults: top-k, top-p, min-p all on
  p.temperature = -1.0f;
  Sampler s(p);
  EXPECT_EQ(s.describe(), "greedy");
}

TEST(Sampler, NaNLogitsAreNeverPicked) {
  Sampler g(plain(0.0f));
  const std::vector<float> logits{NAN, 0.5f, NAN, 0.25f};
  EXPECT_EQ(g.sample(logits, {}), 1);
  Sampler d(plain(1.0f));
  for (int i = 0; i < 200; ++i) {
    const int32_t t = d.sample(logits, {});
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampler, AllNegativeInfinityReturnsLowestId) {
  const std::vector<float> logits{-kInf, -kInf, -kInf};
  const std::vector<float> nans{NAN, NAN};
  Sampler g(plain(0.0f));
  EXPECT_EQ(g.sample(logits, {}), 0);
  SamplingParams p;  // full chain
  p.seed = 1;
  Sampler d(p);
  EXPECT_EQ(d.sample(logits, {}), 0);
  EXPECT_EQ(d.sample(nans, {}), 0);
}

TEST(Sampler, PositiveInfinityWins) {
  const std::vector<float> logits{1.0f, kInf, 2.0f};
  Sampler d(plain(0.5f));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(d.sample(logits, {}), 1);
}

TEST(Sampler, EmptyLogitsThrow) {
  Sampler s(plain(1.0f));
  EXPECT_THROW(s.sample({}, {}), Error);
}

std::vector<int32_t> draws(uint64_t seed, int n) {
  SamplingParams p;
  p.seed = seed;
  p.top_k = 0;
  p.min_p = 0.0f;
  p.top_p = 1.0f;
  Sampler s(p);
  std::vector<float> logits(64);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i));
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits, {}));
  return out;
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDiffers) {
  const auto a = draws(42, 1000);
  EXPECT_EQ(a, draws(42, 1000));
  EXPECT_NE(a, draws(43, 1000));
}

TEST(Sampler, ReseedRestartsTheSequence) {
  auto p = plain(1.0f, 7);
  Sampler s(p);
  const std::vector<float> logits{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<int32_t> first, second;
  for (int i = 0; i < 100; ++i) first.push_back(s.sample(logits, {}));
  s.reseed(7);
  for (int i = 0; i < 100; ++i) second.push_back(s.sample(logits, {}));
  EXPECT_EQ(first, second);
}

TEST(Sampler, DrawMatchesSoftmax) {
  const std::vector<float> logits{0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  Sampler s(plain(1.0f, 12345));
  const int n = 20000;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < n; ++i) ++counts[size_t(s.sample(logits, {}))];
  // Sigma of each frequency is at most sqrt(0.25 / 20000) ~ 0.0035; 0.015 is > 4 sigma.
  for (size_t i = 0; i < 4; ++i)
    EXPECT_NEAR(double(counts[i]) / n, double(i + 1) / 10.0, 0.015) << "token " << i;
}

TEST(Sampler, TemperatureSharpensTheDistribution) {
  const std::vector<float> logits{0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  Sampler s(plain(0.5f, 99));  // p ~ 1, 4, 9, 16 out of 30
  const int n = 20000;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < n; ++i) ++counts[size_t(s.sample(logits, {}))];
  const double expect[4] = {1 / 30.0, 4 / 30.0, 9 / 30.0, 16 / 30.0};
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(double(counts[i]) / n, expect[i], 0.015);
}

TEST(Sampler, ChainTruncatesBeforeTheDraw) {
  auto p = plain(1.0f, 5);
  p.top_k = 2;
  Sampler s(p);
  const std::vector<float> logits{0.0f, 3.0f, 1.0f, 2.9f, -1.0f};
  for (int i = 0; i < 500; ++i) {
    const int32_t t = s.sample(logits, {});
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampler, PenaltiesFeedTheChain) {
  auto p = plain(1.0f, 5);
  p.top_k = 1;
  p.presence_penalty = 10.0f;
  Sampler s(p);
  const std::vector<float> logits{0.0f, 3.0f, 2.0f};
  const std::vector<int32_t> hist{1};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(logits, hist), 2);
}

TEST(Sampler, DescribeListsTheChainInOrder) {
  SamplingParams p;
  p.repeat_penalty = 1.1f;
  p.seed = 42;
  EXPECT_EQ(Sampler(p).describe(),
            "penalties(repeat=1.10) -> top-k(40) -> temp(0.80) -> top-p(0.95) -> "
            "min-p(0.05) -> dist(seed=42)");
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  EXPECT_EQ(Sampler(p).describe(),
            "penalties(repeat=1.10, freq=0.50, presence=0.25) -> top-k(40) -> min-p(0.05) -> "
            "dist(seed=42)");
  p.penalty_last_n = 0;  // a zero window turns penalties off
  EXPECT_EQ(Sampler(p).describe(), "top-k(40) -> min-p(0.05) -> dist(seed=42)");
  EXPECT_EQ(Sampler(plain(1.0f, 3)).describe(), "dist(seed=3)");
}

TEST(Sampler, RandomSeedIsReportedSoRunsCanBeReplayed) {
  SamplingParams p = plain(1.0f, 0xFFFFFFFFFFFFFFFFull);
  Sampler s(p);
  const std::string d = s.describe();
  ASSERT_EQ(d.rfind("dist(seed=", 0), 0u) << d;
  const uint64_t seed = std::stoull(d.substr(10, d.size() - 11));
  Sampler replay(plain(1.0f, seed));
  std::vector<float> logits(16);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::cos(float(i));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(logits, {}), replay.sample(logits, {}));
}

void expect_error(const SamplingParams& p, const std::string& prefix) {
  try {
    Sampler s(p);
    ADD_FAILURE() << "no error for " << prefix;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(prefix, 0), 0u) << e.what();
  }
}

TEST(Sampler, InvalidParametersThrowNamingTheParameter) {
  auto with = [](auto f) {
    SamplingParams p;
    f(p);
    return p;
  };
  expect_error(with([](auto& p) { p.temperature = NAN; }), "temperature:");
  expect_error(with([](auto& p) { p.top_p = 1.5f; }), "top_p: must be in (0, 1], got 1.5");
  expect_error(with([](auto& p) { p.top_p = -0.1f; }), "top_p:");
  expect_error(with([](auto& p) { p.top_p = 0.0f; }), "top_p:");
  expect_error(with([](auto& p) { p.top_p = NAN; }), "top_p:");
  expect_error(with([](auto& p) { p.min_p = -0.01f; }), "min_p:");
  expect_error(with([](auto& p) { p.min_p = 1.01f; }), "min_p:");
  expect_error(with([](auto& p) { p.repeat_penalty = 0.0f; }), "repeat_penalty:");
  expect_error(with([](auto& p) { p.repeat_penalty = NAN; }), "repeat_penalty:");
  expect_error(with([](auto& p) { p.frequency_penalty = NAN; }), "frequency_penalty:");
  expect_error(with([](auto& p) { p.presence_penalty = INFINITY; }), "presence_penalty:");
  expect_error(with([](auto& p) { p.penalty_last_n = -2; }), "penalty_last_n:");
  // A negative top_k was taken as "off" without a word.
  expect_error(with([](auto& p) { p.top_k = -5; }), "top_k: must be >= 0 (0 = off), got -5");
  // Values that mean "off" or "greedy" are valid.
  EXPECT_NO_THROW(Sampler(with([](auto& p) {
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = -3.0f;
    p.penalty_last_n = -1;
  })));
}

}  // namespace
}  // namespace upg
