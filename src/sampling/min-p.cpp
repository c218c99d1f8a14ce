// Min-p: drop candidates less likely than min_p times the most likely one. The cut
// scales with the model's confidence, unlike a fixed top-k or top-p.
#include <algorithm>

#include <fmt/format.h>

#include "sampling/candidates.h"
#include "sampling/validate.h"

namespace upg {
namespace {

class MinP final : public SamplerStep {
 public:
  explicit MinP(float p) : p_(p) {}
  const char* name() const override { return "min-p"; }
  std::string describe() const override { return fmt::format("min-p({:.2f})", p_); }

  void apply(CandidateList& c, std::span<const int32_t>) override {
    if (p_ <= 0.0f || c.items.empty()) return;
    sampling::ensure_normalized(c);
    const Candidate& top = c.sorted ? c.items.front() : c.items[sampling::best_index(c)];
    const float cut = p_ * top.p;
    const int32_t top_id = top.id;
    // remove_if keeps the relative order, so a sorted list stays sorted; the best item is
    // kept explicitly so rounding can never empty the list.
    auto end = std::remove_if(c.items.begin(), c.items.end(), [&](const Candidate& x) {
      return x.p < cut && x.id != top_id;
    });
    if (end != c.items.end()) {
      c.items.erase(end, c.items.end());
      c.normalized = false;
    }
  }

 private:
  float p_;
};

}  // namespace

std::unique_ptr<SamplerStep> make_min_p(float p) {
  sampling::check_min_p(p);
  return std::make_unique<MinP>(p);
}

}  // namespace upg
