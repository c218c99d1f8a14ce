#include "sampling/candidates.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace upg::sampling {

void ensure_sorted(CandidateList& c) {
  if (c.sorted) return;
  std::sort(c.items.begin(), c.items.end(), better);
  c.sorted = true;
}

size_t best_index(const CandidateList& c) {
  size_t best = 0;
  for (size_t i = 1; i < c.items.size(); ++i)
    if (better(c.items[i], c.items[best])) best = i;
  return best;
}

void ensure_normalized(CandidateList& c) {
  if (c.normalized || c.items.empty()) {
    c.normalized = true;
    return;
  }
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const float max = c.sorted ? c.items.front().logit : c.items[best_index(c)].logit;
  if (max == -kInf) {
    const float u = 1.0f / float(c.items.size());
    for (auto& it : c.items) it.p = u;
  } else if (max == kInf) {
    // exp(inf - inf) is NaN, so the infinite ones are counted instead of exponentiated.
    size_t n = 0;
    for (const auto& it : c.items) n += it.logit == kInf;
    for (auto& it : c.items) it.p = it.logit == kInf ? 1.0f / float(n) : 0.0f;
  } else {
    double sum = 0.0;
    for (auto& it : c.items) {
      it.p = std::exp(it.logit - max);
      sum += it.p;
    }
    // sum >= 1 because the max term is exp(0).
    const double inv = 1.0 / sum;
    for (auto& it : c.items) it.p = float(it.p * inv);
  }
  c.normalized = true;
}

size_t most_likely(const CandidateList& c) {
  size_t top = 0;
  for (size_t i = 1; i < c.items.size(); ++i)
    if (c.items[i].p > c.items[top].p) top = i;
  return top;
}

}  // namespace upg::sampling
