#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "sampling/test-lists.h"
#include "upg/core/error.h"
#include "upg/sampling/sampling.h"

namespace upg {
namespace {

SamplingParams params(float temp, uint64_t seed) { return sampling::test::plain(temp, seed); }

CandidateList dist_of(const std::vector<float>& p) {
  CandidateList c;
  for (size_t i = 0; i < p.size(); ++i) c.items.push_back({int32_t(i), 0.0f, p[i]});
  c.normalized = true;
  return c;
}

int32_t draw_from(const std::vector<float>& q, std::mt19937_64& rng) {
  const double u = double(rng() >> 11) * 0x1.0p-53;
  double cum = 0;
  for (size_t i = 0; i < q.size(); ++i)
    if (u < (cum += q[i])) return int32_t(i);
  return int32_t(q.size() - 1);
}

// Pearson's chi-square of observed counts against expected probabilities.
double chi_square(const std::vector<int>& counts, const std::vector<float>& p, int n) {
  double x2 = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double e = double(p[i]) * n;
    if (e > 0) x2 += (counts[i] - e) * (counts[i] - e) / e;
    else EXPECT_EQ(counts[i], 0) << "token " << i << " has no target probability";
  }
  return x2;
}

// Draws from the draft, verifies against the target, and checks that what comes out
// follows the target (chi-square, 5 degrees of freedom: 25 is p < 1e-4 under the null,
// and the seeds are fixed, so the test is deterministic) and that the acceptance rate is
// sum_x min(p(x), q(x)).
void check_keeps_target(const std::vector<float>& p, const std::vector<float>& q, uint64_t seed) {
  Sampler s(params(1.0f, seed));
  std::mt19937_64 draft_rng(seed ^ 0x9e3779b97f4a7c15ull);
  const CandidateList target = dist_of(p), draft = dist_of(q);
  constexpr int kTrials = 60000;
  std::vector<int> counts(p.size(), 0);
  int accepted = 0;
  for (int i = 0; i < kTrials; ++i) {
    const int32_t x = draw_from(q, draft_rng);
    const DraftVerdict v = s.verify_draft(target, draft, x);
    ASSERT_GE(v.token, 0);
    ASSERT_LT(v.token, int32_t(p.size()));
    if (v.accepted) {
      ASSERT_EQ(v.token, x);
      ++accepted;
    }
    ++counts[size_t(v.token)];
  }
  EXPECT_LT(chi_square(counts, p, kTrials), 25.0);
  double expect_accept = 0;
  for (size_t i = 0; i < p.size(); ++i) expect_accept += std::min(p[i], q[i]);
  EXPECT_NEAR(double(accepted) / kTrials, expect_accept, 0.01);
}

TEST(SpeculativeSampling, KeepsTheTargetDistribution) {
  check_keeps_target({0.05f, 0.4f, 0.1f, 0.25f, 0.15f, 0.05f}, {0.3f, 0.1f, 0.1f, 0.1f, 0.2f, 0.2f}, 7);
  // A draft that puts mass where the target has none, and misses a target token.
  check_keeps_target({0.5f, 0.0f, 0.2f, 0.1f, 0.2f, 0.0f}, {0.1f, 0.4f, 0.0f, 0.3f, 0.1f, 0.1f}, 11);
  // Identical distributions accept everything.
  const std::vector<float> same{0.1f, 0.2f, 0.3f, 0.15f, 0.15f, 0.1f};
  check_keeps_target(same, same, 13);
}

TEST(SpeculativeSampling, DeterministicDraftAcceptsWithTheTargetsProbability) {
  // Prompt lookup proposes one token with certainty: accepted with probability p(x), and
  // on rejection the replacement never is that token.
  const std::vector<float> p{0.1f, 0.6f, 0.2f, 0.1f};
  Sampler s(params(1.0f, 3));
  CandidateList draft;
  draft.items.push_back({1, 0.0f, 1.0f});
  const CandidateList target = dist_of(p);
  constexpr int kTrials = 40000;
  std::vector<int> counts(p.size(), 0);
  int accepted = 0;
  for (int i = 0; i < kTrials; ++i) {
    const DraftVerdict v = s.verify_draft(target, draft, 1);
    if (v.accepted) ++accepted;
    else EXPECT_NE(v.token, 1);
    ++counts[size_t(v.token)];
  }
  EXPECT_NEAR(double(accepted) / kTrials, 0.6, 0.01);
  EXPECT_LT(chi_square(counts, p, kTrials), 25.0);
}

TEST(SpeculativeSampling, GreedyAcceptsOnlyTheArgmaxAndDrawsNothing) {
  Sampler s(params(0.0f, 5));
  const std::vector<float> logits{0.5f, 2.0f, 1.0f};
  const CandidateList target = s.distribution(logits, {});
  ASSERT_EQ(target.items.size(), 1u);
  EXPECT_EQ(target.items[0].id, 1);
  const CandidateList draft = dist_of({0.2f, 0.3f, 0.5f});
  EXPECT_TRUE(s.verify_draft(target, draft, 1).accepted);
  const DraftVerdict v = s.verify_draft(target, draft, 2);
  EXPECT_FALSE(v.accepted);
  EXPECT_EQ(v.token, 1);
}

TEST(SpeculativeSampling, RejectsNegativeDraftIds) {
  Sampler s(params(1.0f, 5));
  CandidateList draft;
  draft.items.push_back({-3, 0.0f, 1.0f});
  EXPECT_THROW(s.verify_draft(dist_of({0.5f, 0.5f}), draft, 0), Error);
}

TEST(Sampler, SampleIsDrawOfDistribution) {
  // Same seed, same logits: sample() and draw(distribution()) walk the random stream alike.
  SamplingParams sp = params(0.9f, 99);
  sp.top_k = 3;
  Sampler a(sp), b(sp);
  const std::vector<float> logits{0.1f, 1.5f, 0.3f, 1.2f, -2.0f, 0.9f};
  for (int i = 0; i < 200; ++i) ASSERT_EQ(a.sample(logits, {}), b.draw(b.distribution(logits, {})));
}

TEST(Sampler, CopyContinuesTheSameStream) {
  Sampler a(params(1.0f, 21));
  const std::vector<float> logits{0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  for (int i = 0; i < 10; ++i) a.sample(logits, {});
  Sampler b(a);  // a snapshot: both continue identically
  for (int i = 0; i < 50; ++i) ASSERT_EQ(a.sample(logits, {}), b.sample(logits, {}));
  Sampler c(params(0.0f, 1));
  c = a;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(a.sample(logits, {}), c.sample(logits, {}));
}

}  // namespace
}  // namespace upg
