#include "sampling/validate.h"

#include <cmath>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::sampling {

namespace {
[[noreturn]] void bad(const char* param, const char* rule, float v) {
  throw ParamError(param, fmt::format("must be {}, got {}", rule, v));
}
}  // namespace

void check_temperature(float t) {
  if (!std::isfinite(t)) bad("temperature", "a finite number (<= 0 for greedy)", t);
}

void check_top_p(float p) {
  // NaN fails both comparisons, so it is written as a negated range test.
  if (!(p > 0.0f && p <= 1.0f)) bad("top_p", "in (0, 1]", p);
}

void check_min_p(float p) {
  if (!(p >= 0.0f && p <= 1.0f)) bad("min_p", "in [0, 1]", p);
}

void check_repeat_penalty(float r) {
  if (!(r > 0.0f) || !std::isfinite(r)) bad("repeat_penalty", "a finite number > 0", r);
}

void check_frequency_penalty(float f) {
  if (!std::isfinite(f)) bad("frequency_penalty", "a finite number", f);
}

void check_presence_penalty(float f) {
  if (!std::isfinite(f)) bad("presence_penalty", "a finite number", f);
}

void check_repeat_last_n(int n) {
  if (n < -1) throw ParamError("penalty_last_n", fmt::format("must be >= -1 (-1 = all), got {}", n));
}

void check_top_k(int k) {
  if (k < 0) throw ParamError("top_k", fmt::format("must be >= 0 (0 = off), got {}", k));
}

void check_params(const SamplingParams& p) {
  check_temperature(p.temperature);
  check_top_k(p.top_k);
  check_top_p(p.top_p);
  check_min_p(p.min_p);
  check_repeat_penalty(p.repeat_penalty);
  check_frequency_penalty(p.frequency_penalty);
  check_presence_penalty(p.presence_penalty);
  check_repeat_last_n(p.penalty_last_n);
}

}  // namespace upg::sampling
