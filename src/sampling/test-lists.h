#pragma once
// Hand-made candidate lists for the step tests.
#include <vector>

#include "upg/sampling/sampling.h"

namespace upg::sampling::test {

// Only the temperature and the seed: top-k, top-p and min-p off.
inline SamplingParams plain(float temp, uint64_t seed = 42) {
  SamplingParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

// Item i gets id i and logits[i], unsorted and unnormalised, as Sampler::sample builds it.
inline CandidateList make_list(const std::vector<float>& logits) {
  CandidateList c;
  for (size_t i = 0; i < logits.size(); ++i) c.items.push_back({int32_t(i), logits[i], 0.0f});
  return c;
}

inline std::vector<int32_t> ids(const CandidateList& c) {
  std::vector<int32_t> out;
  for (const auto& it : c.items) out.push_back(it.id);
  return out;
}

inline std::vector<float> logits(const CandidateList& c) {
  std::vector<float> out;
  for (const auto& it : c.items) out.push_back(it.logit);
  return out;
}

}  // namespace upg::sampling::test
