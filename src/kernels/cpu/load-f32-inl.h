// Per-target Highway helper, included by each kernel source after hwy/highway.h (the
// -inl.h convention: re-included once per target by foreach_target).
#if defined(UPG_KERNELS_CPU_LOAD_F32_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef UPG_KERNELS_CPU_LOAD_F32_INL_H_
#undef UPG_KERNELS_CPU_LOAD_F32_INL_H_
#else
#define UPG_KERNELS_CPU_LOAD_F32_INL_H_
#endif

#include <type_traits>

#include "hwy/highway.h"
#include "upg/core/tensor.h"

HWY_BEFORE_NAMESPACE();
namespace upg::kernels::HWY_NAMESPACE {

// One vector of f32 lanes from f32, f16, bf16 or int8 values (weights, KV cache rows):
// the narrower types load at a half or a quarter of the width and widen.
template <class DF, class T>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<DF> LoadAsF32(DF d, const T* HWY_RESTRICT p) {
  namespace hn = hwy::HWY_NAMESPACE;
  if constexpr (std::is_same_v<T, float>) {
    return hn::LoadU(d, p);
  } else if constexpr (std::is_same_v<T, int8_t>) {
    return hn::ConvertTo(d, hn::PromoteTo(hn::Rebind<int32_t, DF>(), hn::LoadU(hn::Rebind<int8_t, DF>(), p)));
  } else {
    return hn::PromoteTo(d, hn::LoadU(hn::Rebind<T, DF>(), p));
  }
}

// One f32, f16 or int8 value as a float, for the scalar tails of the same loops.
template <class T>
HWY_INLINE float ToF32(T v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else if constexpr (std::is_same_v<T, int8_t>) {
    return float(v);
  } else {
    return upg::fp16_to_fp32(v.bits);
  }
}

}  // namespace upg::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // UPG_KERNELS_CPU_LOAD_F32_INL_H_
