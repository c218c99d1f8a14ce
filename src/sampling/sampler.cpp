// The chain (penalties -> top-k -> temperature -> top-p -> min-p) and the final pick:
// argmax in greedy mode, otherwise one draw from the softmax of what is left.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "sampling/candidates.h"
#include "sampling/validate.h"
#include "upg/core/error.h"

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

Sampler::Sampler(const SamplingParams& p) : params_(p), greedy_(p.temperature <= 0.0f) {
  sampling::check_params(p);
  build_chain();
  reseed(p.seed);
}

Sampler::Sampler(const Sampler& other)
    : params_(other.params_), greedy_(other.greedy_), rng_(other.rng_), seed_(other.seed_) {
  build_chain();
}

Sampler::~Sampler() = default;

void Sampler::build_chain() {
  const SamplingParams& p = params_;
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
}

void Sampler::reseed(uint64_t seed) {
  seed_ = resolve_seed(seed);
  rng_.seed(seed_);
}

double Sampler::uniform() { return uniform01(rng_); }

std::string Sampler::describe() const {
  std::string s;
  for (const auto& step : steps_) s += step->describe() + " -> ";
  s += greedy_ ? std::string("greedy") : fmt::format("dist(seed={})", seed_);
  return s;
}

const CandidateList& Sampler::distribution(std::span<const float> logits, std::span<const int32_t> history,
                                           std::span<const uint32_t> allowed) {
  if (logits.empty()) throw Error("sampler: empty logits");
  if (logits.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw Error(fmt::format("sampler: {} logits exceed the int32 token id range", logits.size()));

  // resize() on a vector that already has the capacity does not allocate.
  if (!allowed.empty() && allowed.size() * 32 < logits.size())
    throw Error(fmt::format("sampler: a token mask of {} words for {} logits", allowed.size(), logits.size()));
  work_.items.resize(logits.size());
  size_t n = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!allowed.empty() && !((allowed[i / 32] >> (i % 32)) & 1u)) continue;
    // NaN compares false with everything: it would break std::sort's ordering (undefined
    // behaviour) and poison the softmax sum. A NaN logit is a broken score, so the safe
    // reading is "never pick it": -inf.
    const float l = logits[i];
    work_.items[n++] = {int32_t(i), std::isnan(l) ? -std::numeric_limits<float>::infinity() : l, 0.0f};
  }
  if (n == 0) throw Error("sampler: the token mask allows no token");
  work_.items.resize(n);  // shrinking keeps the capacity: no allocation on the next call
  work_.sorted = false;
  work_.normalized = false;

  for (auto& step : steps_) step->apply(work_, history);
  if (work_.items.empty()) throw Error("sampler: the chain left no candidates");

  // Greedy, or nothing left with any probability (all -inf): the best index is the
  // lowest-id candidate among equals, which is a valid token rather than a crash.
  const size_t best = sampling::best_index(work_);
  if (greedy_ || work_.items[best].logit == -std::numeric_limits<float>::infinity()) {
    const Candidate top = work_.items[best];
    work_.items.assign(1, {top.id, top.logit, 1.0f});
    work_.sorted = work_.normalized = true;
    return work_;
  }
  sampling::ensure_normalized(work_);
  return work_;
}

int32_t Sampler::draw(const CandidateList& dist) {
  if (dist.items.empty()) throw Error("sampler: drawing from an empty distribution");
  if (greedy_) return dist.items[sampling::most_likely(dist)].id;  // no draw at temperature <= 0
  const double u = uniform();
  double cum = 0.0;
  for (const auto& it : dist.items) {
    cum += it.p;
    if (u < cum) return it.id;
  }
  // Rounding can leave the total a hair below u; the last item with mass takes it.
  for (size_t i = dist.items.size(); i-- > 0;)
    if (dist.items[i].p > 0.0f) return dist.items[i].id;
  return dist.items.back().id;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history,
                        std::span<const uint32_t> allowed) {
  return draw(distribution(logits, history, allowed));
}

}  // namespace upg
