// Sampler::sample promises no allocation after the first call (it runs once per token).
// Counting replaced global operator new is the only way to check that from outside.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "upg/sampling.h"

namespace {
std::atomic<long> g_allocs{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

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
  const long at_start = g_allocs.load();
  s.sample(logits, hist);
  EXPECT_GT(g_allocs.load() - at_start, 0) << "the counter must see the first call's buffers";
  const long before = g_allocs.load();
  for (int i = 0; i < 50; ++i) s.sample(logits, hist);
  EXPECT_EQ(g_allocs.load() - before, 0);
}

}  // namespace
}  // namespace upg
