#pragma once
// Log-probabilities of the model's raw distribution (log-softmax of the logits) for a
// request that asks for them (Request::top_logprobs).
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace upg {

// The log-probability of `token` under softmax(logits), and in `top` (cleared first) the
// k most likely tokens with theirs, most likely first (ties: the lower id first).
// `order` is scratch whose capacity is reused.
float token_logprobs(std::span<const float> logits, int32_t token, int k, std::vector<std::pair<int32_t, float>>& top,
                     std::vector<int32_t>& order);

}  // namespace upg
