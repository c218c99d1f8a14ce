// Speculative decoding keeps the target's distribution (the accept/reject rule of
// Leviathan et al. and Chen et al.): on the tiny model, with another tiny model of the
// same vocabulary drafting, the second sampled token's frequencies over many seeds fit
// its exact marginal under the target alone, computed from the target's own logits. The
// test also checks it could fail: taking the drafts as they come would give frequencies
// far outside its bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "engine/test-tiny-model.h"
#include "upg/engine/engine.h"

namespace upg {
namespace {

constexpr float kTemperature = 0.7f;  // sharper than 1, so the two models' distributions differ more

std::vector<double> softmax_row(const float* logits, int vocab) {
  std::vector<double> p(static_cast<size_t>(vocab));
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += p[size_t(i)] = std::exp(double(logits[i] - mx) / kTemperature);
  for (double& x : p) x /= sum;
  return p;
}

std::vector<double> next_token_probs(Model& m, const std::vector<int32_t>& toks) {
  const int vocab = m.config().vocab_size;
  const std::vector<float> logits = m.forward(toks);
  return softmax_row(logits.data() + (toks.size() - 1) * size_t(vocab), vocab);
}

// The marginal of the second generated token: sum over the first of p(t1) p(t2 | t1),
// the second factor from `second` (the target, or the draft for the power check).
std::vector<double> second_token_marginal(Model& target, Model& second, const std::vector<int32_t>& prompt) {
  const std::vector<double> p1 = next_token_probs(target, prompt);
  std::vector<double> out(p1.size(), 0.0);
  for (size_t t1 = 0; t1 < p1.size(); ++t1) {
    std::vector<int32_t> toks = prompt;
    toks.push_back(int32_t(t1));
    const std::vector<double> p2 = next_token_probs(second, toks);
    for (size_t t2 = 0; t2 < p2.size(); ++t2) out[t2] += p1[t1] * p2[t2];
  }
  return out;
}

// Pearson's statistic of `counts` against n * p, over the bins expected to hold at least
// 5 (the rest pooled into one bin); `bins` gets the number of bins used.
double chi_square(const std::vector<double>& p, const std::vector<int64_t>& counts, int64_t n, int* bins) {
  double stat = 0, pool_e = 0, pool_o = 0;
  *bins = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * double(n);
    if (e < 5) {
      pool_e += e;
      pool_o += double(counts[i]);
      continue;
    }
    stat += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
    ++*bins;
  }
  if (pool_e > 0) {
    stat += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
    ++*bins;
  }
  return stat;
}

// The chi-square quantile of df degrees of freedom at 1 - 1e-4 (Wilson-Hilferty).
double chi_square_bound(int df) {
  const double z = 3.719, k = 2.0 / (9.0 * df);
  return df * std::pow(1 - k + z * std::sqrt(k), 3);
}

TEST(SpeculativeDistribution, DraftModelSamplingKeepsTheTargetsDistribution) {
  auto target = test::tiny_engine_model(), draft = test::tiny_engine_model(0, "mistral"),
       ref = test::tiny_engine_model(), ref_draft = test::tiny_engine_model(0, "mistral");
  const std::vector<int32_t> prompt = {11, 42, 7, 99, 3, 250, 17};
  const std::vector<double> want = second_token_marginal(*ref, *ref, prompt);
  const std::vector<double> drafts = second_token_marginal(*ref, *ref_draft, prompt);

  SpeculativeOptions spec;
  spec.draft = draft.get();
  spec.draft_max = 2;
  Engine e(*target, {{512, 8}, true, spec});
  constexpr int64_t kSamples = 2000;
  std::vector<int64_t> counts(want.size(), 0);
  std::vector<int32_t> got(size_t(kSamples), -1);
  std::vector<int64_t> ids;
  for (int64_t s = 0; s < kSamples; ++s) {
    Request r;
    r.prompt = prompt;
    r.sampling.temperature = kTemperature;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0.0f;
    r.sampling.seed = uint64_t(1000 + s);
    r.max_new_tokens = 3;  // after the first token, a drafted second one is verified
    r.ignore_eos = true;
    ids.push_back(e.submit(r));
  }
  std::vector<int> seen(size_t(kSamples), 0);
  for (int guard = 0; !e.idle() && guard < 100000; ++guard)
    for (const RequestEvent& ev : e.step()) {
      if (ev.token < 0) continue;
      const int64_t k = ev.id - ids.front();
      if (++seen[size_t(k)] == 2) ++counts[size_t(ev.token)];
    }
  ASSERT_TRUE(e.idle());
  const EngineStats st = e.stats();
  EXPECT_GE(st.drafted_tokens, kSamples);           // a draft for every request's second token
  EXPECT_LT(st.accepted_tokens, st.drafted_tokens);  // and some were rejected: the rule ran both ways
  EXPECT_GT(st.accepted_tokens, 0);

  int bins = 0;
  const double stat = chi_square(want, counts, kSamples, &bins);
  const double bound = chi_square_bound(bins - 1);
  EXPECT_LT(stat, bound) << "the second token's frequencies do not fit the target's marginal (" << bins << " bins)";
  // Power: frequencies drawn from the drafts' marginal would exceed the bound by far
  // (the statistic's expectation under that alternative).
  double shift = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (want[i] > 0) shift += (drafts[i] - want[i]) * (drafts[i] - want[i]) / want[i];
  EXPECT_GT(double(kSamples) * shift + (bins - 1), 2 * bound) << "the test could not tell the drafts from the target";
  std::printf("chi-square %.1f over %d bins (bound %.1f); drafts' marginal would give about %.1f\n", stat, bins,
              bound, double(kSamples) * shift + (bins - 1));
}

}  // namespace
}  // namespace upg
