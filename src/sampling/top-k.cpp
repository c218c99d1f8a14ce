// Top-k: keep the k best candidates. A partial sort is O(n log k), which matters when n
// is the whole vocabulary and k is small.
#include <algorithm>

#include <fmt/format.h>

#include "sampling/candidates.h"
#include "upg/core/error.h"

namespace upg {
namespace {

class TopK final : public SamplerStep {
 public:
  explicit TopK(int k) : k_(size_t(k)) {}
  const char* name() const override { return "top-k"; }
  std::string describe() const override { return fmt::format("top-k({})", k_); }

  void apply(CandidateList& c, std::span<const int32_t>) override {
    if (k_ >= c.items.size()) return;
    if (!c.sorted) {
      std::partial_sort(c.items.begin(), c.items.begin() + ptrdiff_t(k_), c.items.end(),
                        sampling::better);
      c.sorted = true;
    }
    c.items.resize(k_);
    c.normalized = false;
  }

 private:
  size_t k_;
};

}  // namespace

std::unique_ptr<SamplerStep> make_top_k(int k) {
  if (k <= 0) throw ParamError("top_k", fmt::format("the top-k step needs k > 0, got {}", k));
  return std::make_unique<TopK>(k);
}

}  // namespace upg
