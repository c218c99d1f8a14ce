// Repetition penalties with llama.cpp semantics: only tokens seen in the last `last_n`
// history entries are touched; CTRL-style repeat divides positive logits and multiplies
// negative ones (so it always pushes away from the token), then the OpenAI-style terms
// subtract count * frequency and, once, presence.
#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "sampling/validate.h"
#include "upg/core/error.h"

namespace upg {
namespace {

class Penalties final : public SamplerStep {
 public:
  Penalties(float repeat, float frequency, float presence, int last_n)
      : repeat_(repeat), frequency_(frequency), presence_(presence), last_n_(last_n) {}

  const char* name() const override { return "penalties"; }

  std::string describe() const override {
    std::string s;
    auto add = [&s](std::string part) { s += (s.empty() ? "" : ", ") + part; };
    if (repeat_ != 1.0f) add(fmt::format("repeat={:.2f}", repeat_));
    if (frequency_ != 0.0f) add(fmt::format("freq={:.2f}", frequency_));
    if (presence_ != 0.0f) add(fmt::format("presence={:.2f}", presence_));
    return fmt::format("penalties({})", s);
  }

  void apply(CandidateList& c, std::span<const int32_t> history) override {
    if (last_n_ == 0 || history.empty()) return;
    size_t n = history.size();
    if (last_n_ > 0) n = std::min(n, size_t(last_n_));
    // Counting by sorting a copy of the window keeps this allocation-free after the first
    // call and independent of the vocabulary size (the window is small, the vocab is not).
    window_.assign(history.end() - ptrdiff_t(n), history.end());
    std::sort(window_.begin(), window_.end());
    bool changed = false;
    for (size_t i = 0; i < window_.size();) {
      const int32_t id = window_[i];
      size_t j = i;
      while (j < window_.size() && window_[j] == id) ++j;
      if (Candidate* cand = find(c, id)) {
        penalize(*cand, int(j - i));
        changed = true;
      }
      i = j;
    }
    if (changed) c.sorted = c.normalized = false;
  }

 private:
  // Penalties usually run first, while item i still holds id i; otherwise fall back to a
  // scan. Ids outside the candidate list (dropped earlier, or not in the vocab) are skipped.
  static Candidate* find(CandidateList& c, int32_t id) {
    if (id >= 0 && size_t(id) < c.items.size() && c.items[size_t(id)].id == id)
      return &c.items[size_t(id)];
    auto it = std::find_if(c.items.begin(), c.items.end(),
                           [id](const Candidate& x) { return x.id == id; });
    return it == c.items.end() ? nullptr : &*it;
  }

  void penalize(Candidate& cand, int count) const {
    if (cand.logit <= 0.0f)
      cand.logit *= repeat_;
    else
      cand.logit /= repeat_;
    cand.logit -= float(count) * frequency_ + presence_;
  }

  float repeat_, frequency_, presence_;
  int last_n_;
  std::vector<int32_t> window_;
};

}  // namespace

std::unique_ptr<SamplerStep> make_penalties(float repeat, float frequency, float presence,
                                            int last_n) {
  sampling::check_repeat_penalty(repeat);
  sampling::check_frequency_penalty(frequency);
  sampling::check_presence_penalty(presence);
  sampling::check_repeat_last_n(last_n);
  return std::make_unique<Penalties>(repeat, frequency, presence, last_n);
}

}  // namespace upg
