// Sampler::sample promises no allocation after the first call (it runs once per token).
// core/count-allocations.h counts operator new.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/count-allocations.h"
#include "upg/sampling/sampling.h"

namespace upg {
namespace {

TEST(SamplerAlloc, NoAllocationAfterFirstCall) {
  SamplingParams p;  // full chain
  p.repeat_penalty = 1.1f;
  p.frequency_penalty = 0.1f;
  p.top_k = 0;  // so top-p sorts the whole vocabulary
  p.seed = 1;
  Sampler s(p);
  std::vector<float> logits(4096);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = 4.0f * std::sin(float(i) * 0.37f);
  std::vector<int32_t> hist(100);
  for (size_t i = 0; i < hist.size(); ++i) hist[i] = int32_t(i * 7 % 300);
  const long at_start = test::allocations();
  s.sample(logits, hist);
  EXPECT_GT(test::allocations() - at_start, 0) << "the counter must see the first call's buffers";
  const long before = test::allocations();
  for (int i = 0; i < 50; ++i) s.sample(logits, hist);
  EXPECT_EQ(test::allocations() - before, 0);
  // With a grammar's token mask, the list shrinks and grows back within its capacity.
  std::vector<uint32_t> mask(logits.size() / 32, 0);
  for (size_t w = 0; w < mask.size(); w += 3) mask[w] = 0x0F0F0F0Fu;
  s.sample(logits, hist, mask);
  const long masked = test::allocations();
  for (int i = 0; i < 50; ++i) s.sample(logits, hist, i % 2 ? std::span<const uint32_t>(mask) : std::span<const uint32_t>());
  EXPECT_EQ(test::allocations() - masked, 0);
}

}  // namespace
}  // namespace upg
