#include "sampling/validate.h"

#include <cmath>

#include <fmt/format.h>

#include "upg/error.h"

namespace upg::sampling {

namespace {
[[noreturn]] void bad(const char* flag, const char* rule, float v) {
  throw Error(fmt::format("{}: must be {}, got {}", flag, rule, v));
}
}  // namespace

void check_temperature(float t) {
  if (!std::isfinite(t)) bad("--temp", "a finite number (<= 0 for greedy)", t);
}

void check_top_p(float p) {
  // NaN fails both comparisons, so it is written as a negated range test.
  if (!(p > 0.0f && p <= 1.0f)) bad("--top-p", "in (0, 1]", p);
}

void check_min_p(float p) {
  if (!(p >= 0.0f && p <= 1.0f)) bad("--min-p", "in [0, 1]", p);
}

void check_repeat_penalty(float r) {
  if (!(r > 0.0f) || !std::isfinite(r)) bad("--repeat-penalty", "a finite number > 0", r);
}

void check_frequency_penalty(float f) {
  if (!std::isfinite(f)) bad("--frequency-penalty", "a finite number", f);
}

void check_presence_penalty(float f) {
  if (!std::isfinite(f)) bad("--presence-penalty", "a finite number", f);
}

void check_repeat_last_n(int n) {
  if (n < -1) throw Error(fmt::format("--repeat-last-n: must be >= -1 (-1 = all), got {}", n));
}

void check_params(const SamplingParams& p) {
  check_temperature(p.temperature);
  check_top_p(p.top_p);
  check_min_p(p.min_p);
  check_repeat_penalty(p.repeat_penalty);
  check_frequency_penalty(p.frequency_penalty);
  check_presence_penalty(p.presence_penalty);
  check_repeat_last_n(p.penalty_last_n);
}

}  // namespace upg::sampling
