// Attention's inner loops over KV cache rows, one source compiled per SIMD target: the
// scores of a group of query heads against key rows (dot_rows) and their weighted sum of
// value rows (axpy_rows).
//
// Why a group: with grouped-query attention several query heads (3 in SmolLM2, 4 in
// Llama 3) read the same KV head. Run one head at a time, each cache row was loaded and
// widened from f16 or int8 once per head, and a head's 64-wide dot was one chain of 8
// dependent FMAs, so the kernel waited on FMA latency (4 cycles each). A group shares
// each widened row between up to 3 heads and keeps 12 independent accumulators, enough
// to issue FMAs at the core's rate.
#include "kernels/cpu/hwy-targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention-rows.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/load-f32-inl.h"

#include <algorithm>
#include <type_traits>

#include "upg/core/tensor.h"

HWY_BEFORE_NAMESPACE();
namespace upg::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Heads per pass: 3 heads x 4 accumulators (rows or vectors) are 12 of AVX2's 16
// registers, leaving room for the widened row and the broadcast weights.
constexpr int kMaxHeads = 3;

// The sums of a, b, c and e's lanes, in that order, at out[0..4). Pairs of lanes are
// added by interleaving within 128-bit blocks (twice), then the blocks are added: two
// shuffles and two adds per vector instead of a full horizontal sum of each.
#if HWY_TARGET != HWY_SCALAR
template <class D, class V>
HWY_INLINE void StoreSums4(D d, V a, V b, V c, V e, float* HWY_RESTRICT out) {
  const hn::Repartition<double, D> dd;
  const V ab = hn::Add(hn::InterleaveLower(d, a, b), hn::InterleaveUpper(d, a, b));
  const V ce = hn::Add(hn::InterleaveLower(d, c, e), hn::InterleaveUpper(d, c, e));
  const V s = hn::Add(hn::BitCast(d, hn::InterleaveLower(dd, hn::BitCast(dd, ab), hn::BitCast(dd, ce))),
                      hn::BitCast(d, hn::InterleaveUpper(dd, hn::BitCast(dd, ab), hn::BitCast(dd, ce))));
  // Each 128-bit block of s now holds partial sums of the four; add the blocks.
  HWY_ALIGN float lanes[hn::MaxLanes(d)];
  hn::Store(s, d, lanes);
  const hn::FixedTag<float, 4> d4;
  auto sum = hn::Load(d4, lanes);
  for (size_t i = 4; i < hn::Lanes(d); i += 4) sum = hn::Add(sum, hn::Load(d4, lanes + i));
  hn::StoreU(sum, d4, out);
}
#endif

// scores[j * ss + p] = dot(q + j * dim, K + p * stride) for G heads: four rows a pass,
// each row widened once and multiplied into all G heads' accumulators.
template <int G, class T>
void DotRowsG(const float* HWY_RESTRICT q, const T* HWY_RESTRICT K, int64_t stride, int64_t rows, int64_t dim,
              float* HWY_RESTRICT scores, int64_t ss) {
  int64_t p = 0;
#if HWY_TARGET != HWY_SCALAR
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  if (dim % N == 0) {
    using V = hn::Vec<DF>;
    for (; p + 4 <= rows; p += 4) {
      V acc[G][4];
      for (int j = 0; j < G; ++j)
        for (int r = 0; r < 4; ++r) acc[j][r] = hn::Zero(d);
      const T* k = K + p * stride;
      for (int64_t c = 0; c < dim; c += N) {
        for (int r = 0; r < 4; ++r) {
          const V kr = LoadAsF32(d, k + r * stride + c);
          for (int j = 0; j < G; ++j) acc[j][r] = hn::MulAdd(hn::LoadU(d, q + j * dim + c), kr, acc[j][r]);
        }
      }
      for (int j = 0; j < G; ++j) StoreSums4(d, acc[j][0], acc[j][1], acc[j][2], acc[j][3], scores + j * ss + p);
    }
    // The last rows one at a time, still in vectors: a causal prompt row ends in 0-3 of
    // them, which in scalar code cost as much as the rest of a short row.
    for (; p < rows; ++p) {
      V acc[G];
      for (int j = 0; j < G; ++j) acc[j] = hn::Zero(d);
      for (int64_t c = 0; c < dim; c += N) {
        const V kr = LoadAsF32(d, K + p * stride + c);
        for (int j = 0; j < G; ++j) acc[j] = hn::MulAdd(hn::LoadU(d, q + j * dim + c), kr, acc[j]);
      }
      for (int j = 0; j < G; ++j) scores[j * ss + p] = hn::GetLane(hn::SumOfLanes(d, acc[j]));
    }
  }
#endif
  for (; p < rows; ++p)
    for (int j = 0; j < G; ++j) {
      float s = 0;
      for (int64_t c = 0; c < dim; ++c) s += q[j * dim + c] * ToF32(K[p * stride + c]);
      scores[j * ss + p] = s;
    }
}

// out[j * os + i] += sum_p w(j, p) * V[p * stride + i] for G heads, where w(j, p) is
// a[j * as + p], times scales[p] for int8 rows: 4 vectors of every head's output stay
// in registers across all rows, each row's 4 vectors widened once.
template <int G, class T>
void AxpyRowsG(const float* HWY_RESTRICT a, int64_t as, const T* HWY_RESTRICT Vr, const float* HWY_RESTRICT scales,
               int64_t stride, int64_t rows, int64_t dim, float* HWY_RESTRICT out, int64_t os) {
  auto weight = [&](int j, int64_t p) { return scales ? a[j * as + p] * scales[p] : a[j * as + p]; };
  int64_t c = 0;
#if HWY_TARGET != HWY_SCALAR
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  using V = hn::Vec<DF>;
  for (; c + 4 * N <= dim; c += 4 * N) {
    V o[G][4];
    for (int j = 0; j < G; ++j)
      for (int v = 0; v < 4; ++v) o[j][v] = hn::LoadU(d, out + j * os + c + v * N);
    for (int64_t p = 0; p < rows; ++p) {
      V w[G];
      for (int j = 0; j < G; ++j) w[j] = hn::Set(d, weight(j, p));
      const T* row = Vr + p * stride + c;
      for (int v = 0; v < 4; ++v) {
        const V x = LoadAsF32(d, row + v * N);
        for (int j = 0; j < G; ++j) o[j][v] = hn::MulAdd(w[j], x, o[j][v]);
      }
    }
    for (int j = 0; j < G; ++j)
      for (int v = 0; v < 4; ++v) hn::StoreU(o[j][v], d, out + j * os + c + v * N);
  }
  for (; c + N <= dim; c += N) {
    V o[G];
    for (int j = 0; j < G; ++j) o[j] = hn::LoadU(d, out + j * os + c);
    for (int64_t p = 0; p < rows; ++p) {
      const V x = LoadAsF32(d, Vr + p * stride + c);
      for (int j = 0; j < G; ++j) o[j] = hn::MulAdd(hn::Set(d, weight(j, p)), x, o[j]);
    }
    for (int j = 0; j < G; ++j) hn::StoreU(o[j], d, out + j * os + c);
  }
#endif
  for (; c < dim; ++c)
    for (int j = 0; j < G; ++j) {
      float s = out[j * os + c];
      for (int64_t p = 0; p < rows; ++p) s += weight(j, p) * ToF32(Vr[p * stride + c]);
      out[j * os + c] = s;
    }
}

// The heads in passes of at most kMaxHeads; 4 heads go as 2 + 2 rather than 3 + 1.
template <class Fn>
HWY_INLINE void ForHeadPasses(int64_t heads, Fn&& fn) {
  for (int64_t h = 0; h < heads;) {
    const int64_t left = heads - h, g = left == 4 ? 2 : std::min<int64_t>(left, kMaxHeads);
    fn(h, g);
    h += g;
  }
}

template <class T>
void DotRowsT(const float* HWY_RESTRICT q, int64_t heads, const T* HWY_RESTRICT K, const float* HWY_RESTRICT scales,
              int64_t stride, int64_t rows, int64_t dim, float* HWY_RESTRICT scores, int64_t ss) {
  ForHeadPasses(heads, [&](int64_t h, int64_t g) {
    const float* qh = q + h * dim;
    float* sh = scores + h * ss;
    if (g == 1) DotRowsG<1>(qh, K, stride, rows, dim, sh, ss);
    else if (g == 2) DotRowsG<2>(qh, K, stride, rows, dim, sh, ss);
    else DotRowsG<3>(qh, K, stride, rows, dim, sh, ss);
  });
  // An int8 row's scale factors out of its dot products.
  if (scales)
    for (int64_t j = 0; j < heads; ++j)
      for (int64_t p = 0; p < rows; ++p) scores[j * ss + p] *= scales[p];
}

template <class T>
void AxpyRowsT(const float* HWY_RESTRICT a, int64_t as, int64_t heads, const T* HWY_RESTRICT V,
               const float* HWY_RESTRICT scales, int64_t stride, int64_t rows, int64_t dim, float* HWY_RESTRICT out,
               int64_t os) {
  ForHeadPasses(heads, [&](int64_t h, int64_t g) {
    const float* ah = a + h * as;
    float* oh = out + h * os;
    if (g == 1) AxpyRowsG<1>(ah, as, V, scales, stride, rows, dim, oh, os);
    else if (g == 2) AxpyRowsG<2>(ah, as, V, scales, stride, rows, dim, oh, os);
    else AxpyRowsG<3>(ah, as, V, scales, stride, rows, dim, oh, os);
  });
}

void DotRowsF32(const float* q, int64_t heads, const float* K, int64_t stride, int64_t rows, int64_t dim,
                float* scores, int64_t ss) {
  DotRowsT(q, heads, K, nullptr, stride, rows, dim, scores, ss);
}
void DotRowsF16(const float* q, int64_t heads, const hwy::float16_t* K, int64_t stride, int64_t rows, int64_t dim,
                float* scores, int64_t ss) {
  DotRowsT(q, heads, K, nullptr, stride, rows, dim, scores, ss);
}
void DotRowsI8(const float* q, int64_t heads, const int8_t* K, const float* scales, int64_t stride, int64_t rows,
               int64_t dim, float* scores, int64_t ss) {
  DotRowsT(q, heads, K, scales, stride, rows, dim, scores, ss);
}
void AxpyRowsF32(const float* a, int64_t as, int64_t heads, const float* V, int64_t stride, int64_t rows, int64_t dim,
                 float* out, int64_t os) {
  AxpyRowsT(a, as, heads, V, nullptr, stride, rows, dim, out, os);
}
void AxpyRowsF16(const float* a, int64_t as, int64_t heads, const hwy::float16_t* V, int64_t stride, int64_t rows,
                 int64_t dim, float* out, int64_t os) {
  AxpyRowsT(a, as, heads, V, nullptr, stride, rows, dim, out, os);
}
void AxpyRowsI8(const float* a, int64_t as, int64_t heads, const int8_t* V, const float* scales, int64_t stride,
                int64_t rows, int64_t dim, float* out, int64_t os) {
  AxpyRowsT(a, as, heads, V, scales, stride, rows, dim, out, os);
}

}  // namespace upg::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/cpu/kernels.h"

namespace upg::kernels {

HWY_EXPORT(DotRowsF32);
HWY_EXPORT(DotRowsF16);
HWY_EXPORT(DotRowsI8);
HWY_EXPORT(AxpyRowsF32);
HWY_EXPORT(AxpyRowsF16);
HWY_EXPORT(AxpyRowsI8);

namespace {
bool empty(int64_t heads, int64_t rows, int64_t dim) { return heads <= 0 || rows <= 0 || dim <= 0; }
const hwy::float16_t* as_f16(const uint16_t* p) { return reinterpret_cast<const hwy::float16_t*>(p); }
}  // namespace

void dot_rows(const float* q, int64_t heads, const float* K, int64_t stride, int64_t rows, int64_t dim, float* scores,
              int64_t scores_stride) {
  if (!empty(heads, rows, dim)) HWY_DYNAMIC_DISPATCH(DotRowsF32)(q, heads, K, stride, rows, dim, scores, scores_stride);
}
void dot_rows(const float* q, int64_t heads, const uint16_t* K, int64_t stride, int64_t rows, int64_t dim,
              float* scores, int64_t scores_stride) {
  if (!empty(heads, rows, dim))
    HWY_DYNAMIC_DISPATCH(DotRowsF16)(q, heads, as_f16(K), stride, rows, dim, scores, scores_stride);
}
void dot_rows(const float* q, int64_t heads, const int8_t* K, const float* scales, int64_t stride, int64_t rows,
              int64_t dim, float* scores, int64_t scores_stride) {
  if (!empty(heads, rows, dim))
    HWY_DYNAMIC_DISPATCH(DotRowsI8)(q, heads, K, scales, stride, rows, dim, scores, scores_stride);
}
void axpy_rows(const float* a, int64_t a_stride, int64_t heads, const float* V, int64_t stride, int64_t rows,
               int64_t dim, float* out, int64_t out_stride) {
  if (!empty(heads, rows, dim))
    HWY_DYNAMIC_DISPATCH(AxpyRowsF32)(a, a_stride, heads, V, stride, rows, dim, out, out_stride);
}
void axpy_rows(const float* a, int64_t a_stride, int64_t heads, const uint16_t* V, int64_t stride, int64_t rows,
               int64_t dim, float* out, int64_t out_stride) {
  if (!empty(heads, rows, dim))
    HWY_DYNAMIC_DISPATCH(AxpyRowsF16)(a, a_stride, heads, as_f16(V), stride, rows, dim, out, out_stride);
}
void axpy_rows(const float* a, int64_t a_stride, int64_t heads, const int8_t* V, const float* scales, int64_t stride,
               int64_t rows, int64_t dim, float* out, int64_t out_stride) {
  if (!empty(heads, rows, dim))
    HWY_DYNAMIC_DISPATCH(AxpyRowsI8)(a, a_stride, heads, V, scales, stride, rows, dim, out, out_stride);
}

}  // namespace upg::kernels
#endif  // HWY_ONCE
