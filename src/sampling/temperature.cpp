// Temperature scaling. Dividing by a positive t keeps the order, so only the
// normalisation is invalidated.
#include <fmt/format.h>

#include "sampling/validate.h"
#include "upg/core/error.h"

namespace upg {
namespace {

class Temperature final : public SamplerStep {
 public:
  explicit Temperature(float t) : t_(t) {}
  const char* name() const override { return "temp"; }
  std::string describe() const override { return fmt::format("temp({:.2f})", t_); }

  void apply(CandidateList& c, std::span<const int32_t>) override {
    if (t_ == 1.0f) return;
    const float inv = 1.0f / t_;
    for (auto& it : c.items) it.logit *= inv;
    c.normalized = false;
  }

 private:
  float t_;
};

}  // namespace

std::unique_ptr<SamplerStep> make_temperature(float t) {
  sampling::check_temperature(t);
  // Greedy is the sampler's job (it skips the draw); a step cannot divide by t <= 0.
  if (!(t > 0.0f))
    throw ParamError("temperature", fmt::format("the temperature step needs t > 0, got {}", t));
  return std::make_unique<Temperature>(t);
}

}  // namespace upg
