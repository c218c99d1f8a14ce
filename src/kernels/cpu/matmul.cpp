// Dense matmul y = x W^T (+ bias) for F32, F16 and BF16 weights. One source, compiled
// once per SIMD target by Highway's foreach_target; the weight encoding is a template
// parameter of the per-target kernel, not a copy of it.
#include "kernels/cpu/hwy-targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/load-f32-inl.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

HWY_BEFORE_NAMESPACE();
namespace upg::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Tokens per register tile in prefill. AVX-512 has 32 vector registers: 4 rows x 4
// tokens = 16 accumulators plus 4 x vectors and a weight vector fit; the 16-register
// targets get 4 x 2 so nothing spills.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kTokTile = 4;
#else
constexpr int kTokTile = 2;
#endif
constexpr int kRowTile = 4;
// Decode (one token) has registers to spare, and more rows in flight means more
// concurrent DRAM streams per core.
constexpr int kRowTileDecode = 8;
// One tile ahead: from further ahead the lines arrive too early and compete with the
// current tile's (docs/BENCHMARKS.md, "Dense GEMV/GEMM").
constexpr int64_t kPrefetchTiles = 1;

// One R x T register tile: rows r0.., tokens t0... Each weight vector is loaded once and
// used for T tokens, each x vector once for R rows. Columns past the last whole vector go
// through zero-padded copies, so the tail uses the same code path without reading out of
// bounds.
template <int R, int T, class WT>
HWY_NOINLINE void tile(const WT* HWY_RESTRICT W, int64_t rows, int64_t cols, const float* HWY_RESTRICT x,
                       float* HWY_RESTRICT y, const float* HWY_RESTRICT bias, int64_t r0, int64_t t0, bool prefetch) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t main_cols = cols / N * N;

  hn::Vec<DF> acc[R][T];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[r][t] = hn::Zero(d);

  const WT* wrow[R];
  const float* xrow[T];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) wrow[r] = W + (r0 + r) * cols;
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) xrow[t] = x + (t0 + t) * cols;

  auto step = [&](auto wptr, auto xptr, int64_t c) HWY_ATTR {
    hn::Vec<DF> xv[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) xv[t] = hn::LoadU(d, xptr(t) + c);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const hn::Vec<DF> w = LoadAsF32(d, wptr(r) + c);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[r][t] = hn::MulAdd(w, xv[t], acc[r][t]);
    }
  };

  // Rows are short streams (a 576-wide F16 row is 18 cache lines), too short for the
  // hardware prefetcher to ramp up on, so each row also prefetches the same column of the
  // row one tile below: the next tile's data arrives while this one computes. Past the
  // last row this touches addresses outside W, which a prefetch may do (it never faults;
  // the address is formed as an integer so no out-of-range pointer exists).
  const uintptr_t ahead_bytes = static_cast<uintptr_t>(kPrefetchTiles * R * cols) * sizeof(WT);
  auto main_loop = [&](auto with_prefetch) HWY_ATTR {
    for (int64_t c = 0; c < main_cols; c += N) {
      if constexpr (decltype(with_prefetch)::value) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) hwy::Prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(wrow[r] + c) + ahead_bytes));
      }
      step([&](int r) { return wrow[r]; }, [&](int t) { return xrow[t]; }, c);
    }
  };
  // When the rows are already in L2 (later token tiles of a block) the prefetches would
  // only take load slots from the FMAs.
  if (prefetch) {
    main_loop(std::true_type());
  } else {
    main_loop(std::false_type());
  }
  if (main_cols < cols) {
    const size_t rem = static_cast<size_t>(cols - main_cols);
    HWY_ALIGN WT wbuf[R][HWY_MAX_BYTES / sizeof(float)];
    HWY_ALIGN float xbuf[T][HWY_MAX_BYTES / sizeof(float)];
    std::memset(wbuf, 0, sizeof(wbuf));
    std::memset(xbuf, 0, sizeof(xbuf));
    for (int r = 0; r < R; ++r) std::memcpy(wbuf[r], wrow[r] + main_cols, rem * sizeof(WT));
    for (int t = 0; t < T; ++t) std::memcpy(xbuf[t], xrow[t] + main_cols, rem * sizeof(float));
    step([&](int r) { return static_cast<const WT*>(wbuf[r]); },
         [&](int t) { return static_cast<const float*>(xbuf[t]); }, 0);
  }

#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const float b = bias ? bias[r0 + r] : 0.0f;
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) y[(t0 + t) * rows + r0 + r] = hn::GetLane(hn::SumOfLanes(d, acc[r][t])) + b;
  }
}

template <int R, class WT>
HWY_INLINE void tile_tokens(int T, const WT* W, int64_t rows, int64_t cols, const float* x, float* y,
                            const float* bias, int64_t r0, int64_t t0, bool prefetch) {
  switch (T) {
    case 1: return tile<R, 1>(W, rows, cols, x, y, bias, r0, t0, prefetch);
    case 2: return tile<R, 2>(W, rows, cols, x, y, bias, r0, t0, prefetch);
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    case 3: return tile<R, 3>(W, rows, cols, x, y, bias, r0, t0, prefetch);
    case 4: return tile<R, 4>(W, rows, cols, x, y, bias, r0, t0, prefetch);
#endif
    default: HWY_ASSERT(false);
  }
}

// Rows [r_begin, r_end) for all tokens. Rows are taken in blocks whose weights fit in L2,
// and every token tile runs over a block before the next block is loaded, so a weight
// byte comes from DRAM once per call however many tokens there are.
template <class WT>
void matmul_rows(const WT* W, int64_t rows, int64_t cols, const float* x, int64_t n_tokens, float* y,
                 const float* bias, int64_t r_begin, int64_t r_end) {
  // Smaller blocks gained nothing (docs/BENCHMARKS.md, "Dense GEMV/GEMM"); 256 KiB (a
  // quarter of a Zen 4 / SPR L2) leaves room for x and y.
  constexpr int64_t kBlockBytes = 256 * 1024;
  const int64_t block_rows =
      n_tokens <= kTokTile ? (r_end - r_begin)
                           : std::max<int64_t>(kRowTile, kBlockBytes / (cols * int64_t(sizeof(WT))) / kRowTile * kRowTile);
  for (int64_t rb = r_begin; rb < r_end; rb += block_rows) {
    const int64_t re = std::min(r_end, rb + block_rows);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokTile) {
      const int T = static_cast<int>(std::min<int64_t>(kTokTile, n_tokens - t0));
      const bool prefetch = t0 == 0;  // the first pass over a block brings it from DRAM
      int64_t r = rb;
      if (T == 1)
        for (; r + kRowTileDecode <= re; r += kRowTileDecode) tile<kRowTileDecode, 1>(W, rows, cols, x, y, bias, r, t0, prefetch);
      for (; r + kRowTile <= re; r += kRowTile) tile_tokens<kRowTile>(T, W, rows, cols, x, y, bias, r, t0, prefetch);
      for (; r < re; ++r) tile_tokens<1>(T, W, rows, cols, x, y, bias, r, t0, prefetch);
    }
  }
}

// wtype: 0 = F32, 1 = F16, 2 = BF16 (plain ints keep the exported signature simple).
void MatmulRows(int wtype, const void* W, int64_t rows, int64_t cols, const float* x, int64_t n_tokens, float* y,
                const float* bias, int64_t r_begin, int64_t r_end) {
  switch (wtype) {
    case 0: return matmul_rows(static_cast<const float*>(W), rows, cols, x, n_tokens, y, bias, r_begin, r_end);
    case 1:
      return matmul_rows(static_cast<const hwy::float16_t*>(W), rows, cols, x, n_tokens, y, bias, r_begin, r_end);
    default:
      return matmul_rows(static_cast<const hwy::bfloat16_t*>(W), rows, cols, x, n_tokens, y, bias, r_begin, r_end);
  }
}

}  // namespace upg::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <fmt/format.h>

#include "upg/core/error.h"
#include "kernels/cpu/kernels.h"

namespace upg::kernels {

HWY_EXPORT(MatmulRows);

namespace {
// Row chunks are multiples of this, so a thread's share starts on a whole register tile
// and (for F32) on a 64-byte line.
constexpr int64_t kRowAlign = 16;
// Below this many multiply-adds the ~1-2 us of waking the pool costs more than it saves.
constexpr int64_t kMinParallelMacs = 32 * 1024;
}  // namespace

void matmul(ThreadPool& pool, DType wtype, const void* W, int64_t rows, int64_t cols, const float* x,
            int64_t n_tokens, float* y, const float* bias) {
  int code = 0;
  switch (wtype) {
    case DType::F32: code = 0; break;
    case DType::F16: code = 1; break;
    case DType::BF16: code = 2; break;
    default: throw Error(fmt::format("kernels::matmul: unsupported weight type {}", dtype_name(wtype)));
  }
  if (rows < 0 || cols < 0 || n_tokens < 0)
    throw Error(fmt::format("kernels::matmul: negative shape rows={} cols={} n_tokens={}", rows, cols, n_tokens));
  if (rows == 0 || n_tokens == 0) return;
  if ((cols > 0 && (!W || !x)) || !y) throw Error("kernels::matmul: null W, x or y pointer");

  auto run = [&](int64_t r_begin, int64_t r_end) {
    HWY_DYNAMIC_DISPATCH(MatmulRows)(code, W, rows, cols, x, n_tokens, y, bias, r_begin, r_end);
  };
  const int64_t blocks = (rows + kRowAlign - 1) / kRowAlign;
  if (pool.size() == 1 || blocks == 1 || rows * cols * n_tokens < kMinParallelMacs) {
    run(0, rows);
    return;
  }
  pool.parallel_for(blocks, [&](int64_t b0, int64_t b1, int) {
    run(b0 * kRowAlign, std::min(rows, b1 * kRowAlign));
  });
}

}  // namespace upg::kernels
#endif  // HWY_ONCE
