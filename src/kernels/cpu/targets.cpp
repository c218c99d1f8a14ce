// Reports and forces the SIMD target that HWY_DYNAMIC_DISPATCH picks. The target in use
// is read back through a dispatched function, so it names what the kernels really run.
#include "kernels/cpu/hwy-targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/targets.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace upg::kernels::HWY_NAMESPACE {
int64_t CurrentTarget() { return HWY_TARGET; }
}  // namespace upg::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "kernels/cpu/int8-kernels.h"
#include "kernels/cpu/kernels.h"

namespace upg::kernels {

HWY_EXPORT(CurrentTarget);

namespace {
// What the CPU runs among the compiled targets, taken before any force_target mock is
// installed (force_target calls this first), since the mock changes what hwy reports.
const std::vector<int64_t>& real_targets() {
  static const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  return targets;
}
}  // namespace

std::string simd_target() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CurrentTarget)()); }

std::vector<std::string> available_targets() {
  std::vector<std::string> names;
  for (int64_t t : real_targets()) names.emplace_back(hwy::TargetName(t));  // lowest bit = best first
  return names;
}

bool force_target(const std::string& name) {
  const auto& targets = real_targets();
  int64_t mask = 0;
  if (!name.empty()) {
    for (int64_t t : targets)
      if (name == hwy::TargetName(t)) mask = t;
    if (mask == 0) return false;
  }
  // The mock alone only takes effect at the next lazy re-initialisation; updating the
  // chosen target makes the switch immediate for every dispatch table.
  hwy::SetSupportedTargetsForTest(mask);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  select_int8_kernels(name);
  return true;
}

}  // namespace upg::kernels
#endif  // HWY_ONCE
