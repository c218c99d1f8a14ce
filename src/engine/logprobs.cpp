#include "engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace upg {

float token_logprobs(std::span<const float> logits, int32_t token, int k, std::vector<std::pair<int32_t, float>>& top,
                     std::vector<int32_t>& order) {
  // log Z = max + log(sum exp(l - max)), in double: a 50k-term sum of floats loses digits.
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - mx);
  const double log_z = double(mx) + std::log(sum);
  top.clear();
  if (k > 0) {
    const size_t n = std::min(size_t(k), logits.size());
    order.resize(logits.size());
    std::iota(order.begin(), order.end(), 0);
    auto more_likely = [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    };
    std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(n), order.end(), more_likely);
    for (size_t i = 0; i < n; ++i) top.emplace_back(order[i], float(double(logits[size_t(order[i])]) - log_z));
  }
  return float(double(logits[size_t(token)]) - log_z);
}

}  // namespace upg
