// Elementwise and reduction kernels (rmsnorm, softmax, silu_mul, add, dot, axpy), one
// source compiled per SIMD target. They run once per layer (dot and axpy also in the
// merge of attention chunks) and are bandwidth-trivial; attention's loops over cache
// rows are in attention-rows.cpp.
#include "kernels/cpu/hwy-targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/vector-ops.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include <algorithm>
#include <cmath>

#include "upg/core/tensor.h"

HWY_BEFORE_NAMESPACE();
namespace upg::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

float Dot(const float* HWY_RESTRICT x, const float* HWY_RESTRICT y, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::MulAdd(hn::LoadU(d, x + i), hn::LoadU(d, y + i), a0);
    a1 = hn::MulAdd(hn::LoadU(d, x + i + N), hn::LoadU(d, y + i + N), a1);
    a2 = hn::MulAdd(hn::LoadU(d, x + i + 2 * N), hn::LoadU(d, y + i + 2 * N), a2);
    a3 = hn::MulAdd(hn::LoadU(d, x + i + 3 * N), hn::LoadU(d, y + i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(hn::LoadU(d, x + i), hn::LoadU(d, y + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

void Axpy(float a, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto va = hn::Set(d, a);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
    hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i + N), hn::LoadU(d, y + i + N)), d, y + i + N);
  }
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

// out[i] = x[i] rounded to f16 (nearest even): what the KV cache stores.
void F32ToF16(const float* HWY_RESTRICT x, hwy::float16_t* HWY_RESTRICT out, int64_t n) {
  int64_t i = 0;
  // F16C rounds to nearest even, as the scalar conversion does; Highway's SSE4 and
  // portable DemoteTo truncate, so those targets convert one value at a time.
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(dh, hn::LoadU(d, x + i)), dh, out + i);
#endif
  for (; i < n; ++i) out[i].bits = upg::fp32_to_fp16(x[i]);
}

void AddInplace(float* y, const float* x, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, y + i), hn::LoadU(d, x + i)), d, y + i);
  for (; i < n; ++i) y[i] += x[i];
}

void RmsNorm(const float* x, const float* w, float* out, int64_t n,
             float eps) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto v0 = hn::LoadU(d, x + i), v1 = hn::LoadU(d, x + i + N);
    a0 = hn::MulAdd(v0, v0, a0);
    a1 = hn::MulAdd(v1, v1, a1);
  }
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, x + i);
    a0 = hn::MulAdd(v, v, a0);
  }
  float ss = hn::GetLane(hn::SumOfLanes(d, hn::Add(a0, a1)));
  for (; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const auto vs = hn::Set(d, scale);
  i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), vs), hn::LoadU(d, w + i)), d, out + i);
  for (; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void Softmax(float* x, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  float mx = -INFINITY;
  int64_t i = 0;
  if (n >= N) {
    auto vm = hn::LoadU(d, x);
    for (i = N; i + N <= n; i += N) vm = hn::Max(vm, hn::LoadU(d, x + i));
    mx = hn::GetLane(hn::MaxOfLanes(d, vm));
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  // All -inf (a fully masked row) would give NaN; a uniform distribution is the limit.
  if (mx == -INFINITY) {
    for (i = 0; i < n; ++i) x[i] = 1.0f / static_cast<float>(n);
    return;
  }
  const auto vmx = hn::Set(d, mx);
  auto vsum = hn::Zero(d);
  for (i = 0; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vmx));
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, d, x + i);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, vsum));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  const auto vinv = hn::Set(d, inv);
  for (i = 0; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vinv), d, x + i);
  for (; i < n; ++i) x[i] *= inv;
}

// x[i] = exp(scale * x[i] - m) with m = max(scale * x); returns the sum and m: a
// softmax left unnormalized, so chunks of one row can be merged (attention.cpp).
float ExpScaled(float* x, int64_t n, float scale, float* max_out) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto vs = hn::Set(d, scale);
  auto vm = hn::Set(d, -INFINITY);
  int64_t i = 0;
  for (; i + N <= n; i += N) vm = hn::Max(vm, hn::LoadU(d, x + i));
  float mx = hn::GetLane(hn::MaxOfLanes(d, vm));
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  // scale > 0, so the largest scaled value is scale times the largest one.
  mx *= scale;
  *max_out = mx;
  const auto vmx = hn::Set(d, mx);
  auto vsum = hn::Zero(d);
  for (i = 0; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::MulSub(hn::LoadU(d, x + i), vs, vmx));
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, d, x + i);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, vsum));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] * scale - mx);
    sum += x[i];
  }
  return sum;
}

void SiluMul(const float* gate, const float* up, float* out, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto g = hn::LoadU(d, gate + i);
    // g / (1 + exp(-g)): exp overflows to +inf for g < -88, giving the correct -0.
    const auto s = hn::Div(g, hn::Add(one, hn::Exp(d, hn::Neg(g))));
    hn::StoreU(hn::Mul(s, hn::LoadU(d, up + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace upg::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/cpu/kernels.h"

namespace upg::kernels {

HWY_EXPORT(Dot);
HWY_EXPORT(Axpy);
HWY_EXPORT(F32ToF16);
HWY_EXPORT(AddInplace);
HWY_EXPORT(RmsNorm);
HWY_EXPORT(Softmax);
HWY_EXPORT(SiluMul);
HWY_EXPORT(ExpScaled);

void rmsnorm(const float* x, const float* w, float* out, int64_t n, int64_t n_tokens, float eps) {
  if (n <= 0) return;
  for (int64_t t = 0; t < n_tokens; ++t) HWY_DYNAMIC_DISPATCH(RmsNorm)(x + t * n, w, out + t * n, n, eps);
}

void softmax(float* x, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(Softmax)(x, n);
}

float exp_scaled(float* x, int64_t n, float scale, float* max_out) {
  if (n <= 0) {
    *max_out = -INFINITY;
    return 0;
  }
  return HWY_DYNAMIC_DISPATCH(ExpScaled)(x, n, scale, max_out);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, out, n);
}

void add_inplace(float* y, const float* x, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(AddInplace)(y, x, n);
}

float dot(const float* x, const float* y, int64_t n) { return n > 0 ? HWY_DYNAMIC_DISPATCH(Dot)(x, y, n) : 0.0f; }

void f32_to_f16(const float* x, uint16_t* out, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(F32ToF16)(x, reinterpret_cast<hwy::float16_t*>(out), n);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n);
}

}  // namespace upg::kernels
#endif  // HWY_ONCE
