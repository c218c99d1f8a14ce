// Chooses the int8 kernel table once from the CPU's features (int8-kernels.h).
#include <atomic>

#include "kernels/cpu/int8-kernels.h"
#include "kernels/cpu/kernels.h"

namespace upg::kernels {
namespace {

bool cpu_has_avx512_int8() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2");
}

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

const Int8Kernels* best_for(const std::string& hwy_target) {
  const bool any = hwy_target.empty();
  if ((any || hwy_target.rfind("AVX3", 0) == 0) && cpu_has_avx512_int8()) return &kInt8Avx512;
  if ((any || hwy_target.rfind("AVX3", 0) == 0 || hwy_target == "AVX2") && cpu_has_avx2()) return &kInt8Avx2;
  return &kInt8Scalar;
}

std::atomic<const Int8Kernels*>& current() {
  static std::atomic<const Int8Kernels*> table{best_for("")};
  return table;
}

}  // namespace

const Int8Kernels& int8_kernels() { return *current().load(std::memory_order_relaxed); }

void select_int8_kernels(const std::string& hwy_target_name) { current().store(best_for(hwy_target_name)); }

std::string int8_target() { return int8_kernels().name; }

}  // namespace upg::kernels
