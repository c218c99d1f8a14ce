// Top-p (nucleus): keep the smallest prefix of the sorted candidates whose probability
// mass reaches p, and always at least the best one.
#include <fmt/format.h>

#include "sampling/candidates.h"
#include "sampling/validate.h"

namespace upg {
namespace {

class TopP final : public SamplerStep {
 public:
  explicit TopP(float p) : p_(p) {}
  const char* name() const override { return "top-p"; }
  std::string describe() const override { return fmt::format("top-p({:.2f})", p_); }

  void apply(CandidateList& c, std::span<const int32_t>) override {
    if (p_ >= 1.0f || c.items.empty()) return;
    sampling::ensure_sorted(c);
    sampling::ensure_normalized(c);
    // Summed in double so a long tail of tiny probabilities is not lost to rounding.
    double cum = 0.0;
    size_t keep = c.items.size();
    for (size_t i = 0; i < c.items.size(); ++i) {
      cum += c.items[i].p;
      if (cum >= double(p_)) {
        keep = i + 1;
        break;
      }
    }
    if (keep < c.items.size()) {
      c.items.resize(keep);
      c.normalized = false;
    }
  }

 private:
  float p_;
};

}  // namespace

std::unique_ptr<SamplerStep> make_top_p(float p) {
  sampling::check_top_p(p);
  return std::make_unique<TopP>(p);
}

}  // namespace upg
