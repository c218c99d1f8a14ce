// The chain (penalties -> top-k -> temperature -> top-p -> min-p) and the final pick:
// argmax in greedy mode, otherwise one draw from the softmax of what is left.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "sampling/candidates.h"
#include "sampling/validate.h"
#include "upg/error.h"

namespace upg {
namespace {

constexpr uint64_t kRandomSeed = 0xFFFFFFFFFFFFFFFFull;

uint64_t resolve_seed(uint64_t seed) {
  if (seed != kRandomSeed) return seed;
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ uint64_t(rd());
}

// A uniform double in [0, 1) from the top 53 bits. std::uniform_real_distribution and
// std::discrete_distribution are implementation-defined, so the same seed would give
// different tokens with libstdc++ and libc++; this mapping is the same everywhere.
double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Sampler::Sampler(const SamplingParams& p) : greedy_(p.temperature <= 0.0f) {
  sampling::check_params(p);
  const bool penalties_on =
      p.penalty_last_n != 0 &&
      (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f);
  if (penalties_on)
    steps_.push_back(make_penalties(p.repeat_penalty, p.frequency_penalty, p.presence_penalty,
                                    p.penalty_last_n));
  // Greedy takes the argmax, which none of the other steps can change.
  if (!greedy_) {
    if (p.top_k > 0) steps_.push_back(make_top_k(p.top_k));
    if (p.temperature != 1.0f) steps_.push_back(make_temperature(p.temperature));
    if (p.top_p < 1.0f) steps_.push_back(make_top_p(p.top_p));
    if (p.min_p > 0.0f) steps_.push_back(make_min_p(p.min_p));
  }
  reseed(p.seed);
}

Sampler::~Sampler() = default;

void Sampler::reseed(uint64_t seed) {
  seed_ = resolve_seed(seed);
  rng_.seed(seed_);
}

std::string Sampler::describe() const {
  std::string s;
  for (const auto& step : steps_) s += step->describe() + " -> ";
  s += greedy_ ? std::string("greedy") : fmt::format("dist(seed={})", seed_);
  return s;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.empty()) throw Error("sampler: empty logits");
  if (logits.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw Error(fmt::format("sampler: {} logits exceed the int32 token id range", logits.size()));

  // resize() on a vector that already has the capacity does not allocate.
  work_.items.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    // NaN compares false with everything: it would break std::sort's ordering (undefined
    // behaviour) and poison the softmax sum. A NaN logit is a broken score, so the safe
    // reading is "never pick it": -inf.
    const float l = logits[i];
    work_.items[i] = {int32_t(i), std::isnan(l) ? -std::numeric_limits<float>::infinity() : l,
                      0.0f};
  }
  work_.sorted = false;
  work_.normalized = false;

  for (auto& step : steps_) step->apply(work_, history);
  if (work_.items.empty()) throw Error("sampler: the chain left no candidates");

  const size_t best = sampling::best_index(work_);
  // Greedy, or nothing left with any probability (all -inf): the best index is the
  // lowest-id candidate among equals, which is a valid token rather than a crash.
  if (greedy_ || work_.items[best].logit == -std::numeric_limits<float>::infinity())
    return work_.items[best].id;

  sampling::ensure_normalized(work_);
  const double u = uniform01(rng_);
  double cum = 0.0;
  for (const auto& it : work_.items) {
    cum += it.p;
    if (u < cum) return it.id;
  }
  // Rounding can leave the total a hair below u; the last item with mass takes it.
  for (size_t i = work_.items.size(); i-- > 0;)
    if (work_.items[i].p > 0.0f) return work_.items[i].id;
  return work_.items[best].id;
}

}  // namespace upg
