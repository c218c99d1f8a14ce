// GPTQ and the shared SparseGPT/GPTQ sweep: the lazy block updates against the plain
// column-by-column OBS sweep, and GPTQ against round-to-nearest on the loss both try to
// keep small, the layer's output error on the calibration inputs.
#include "compress/gptq.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "compress/matrix.h"
#include "compress/sparsegpt.h"
#include "compress/sweep-fixtures.h"
#include "upg/core/error.h"

namespace upg::compress {
namespace {
using namespace fixtures;

// A coarse symmetric grid (levels = 7: int4's range) with `group` columns per scale: the
// rounding error is large enough to dominate, and it exercises the grouped path.
class CoarseGrid final : public QuantGrid {
 public:
  CoarseGrid(int levels, int64_t group) : levels_(levels), group_(group) {}
  int64_t group_size(int64_t cols) const override { return group_ > 0 ? group_ : cols; }
  GridParams choose(std::span<const float> w) const override {
    float a = 0;
    for (float x : w) a = std::max(a, std::fabs(x));
    return {a / float(levels_), 0};
  }
  int32_t code(float w, const GridParams& g) const override {
    return g.scale > 0 ? int32_t(std::clamp(std::nearbyint(w / g.scale), -float(levels_), float(levels_))) : 0;
  }
  float value(int32_t code, const GridParams& g) const override { return g.scale * float(code); }

 private:
  int levels_;
  int64_t group_;
};

// Round-to-nearest on the same grid: every group's scale from its own weights (the kept
// ones: zeros stay zero), no compensation.
std::vector<float> round_to_nearest(const std::vector<float>& w, int64_t rows, int64_t cols, const QuantGrid& g) {
  std::vector<float> q = w;
  const int64_t gs = g.group_size(cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += gs) {
      float* p = q.data() + r * cols + c0;
      std::vector<float> kept;
      for (int64_t j = 0; j < gs; ++j)
        if (p[j] != 0.0f) kept.push_back(p[j]);
      const GridParams s = g.choose(kept);
      for (int64_t j = 0; j < gs; ++j)
        if (p[j] != 0.0f) p[j] = g.value(g.code(p[j], s), s);
    }
  return q;
}

// The compressor's grouped options (int4 dense or N:M with pattern p; int3, int2 dense).
MatrixOptions int4_options(int group, bool zero_point, Pattern p = {}, int bits = 4) {
  MatrixOptions m;
  m.pattern = p;
  m.sparsity = 0;
  m.values = {format::grouped_encoding(bits), 0, group, zero_point};
  m.threads = 2;
  return m;
}

// Every weight of w [rows, cols] is a value of its group's grid (source column order).
void expect_on_grid(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<GridParams>& grids,
                    const QuantGrid& g) {
  const int64_t gs = g.group_size(cols), groups = (cols + gs - 1) / gs;
  ASSERT_EQ(int64_t(grids.size()), rows * groups);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const GridParams& p = grids[size_t(r * groups + c / gs)];
      const float v = w[size_t(r * cols + c)];
      ASSERT_EQ(g.value(g.code(v, p), p), v) << r << "," << c;
    }
}

// The sweep as SparseGPT's paper writes it, one column at a time with every update applied
// at once to the whole rest of the row: the lazy block version must agree.
std::vector<float> unblocked_prune(std::vector<float> w, int64_t rows, int64_t cols, const std::vector<float>& u,
                                   double sparsity, int64_t block) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = w.data() + r * cols;
    std::vector<uint8_t> gone(size_t(cols), 0);
    for (int64_t i1 = 0; i1 < cols; i1 += block) {
      const int64_t i2 = std::min(cols, i1 + block);
      const int64_t count = std::llround(sparsity * double(i2)) - std::llround(sparsity * double(i1));
      std::vector<int64_t> idx;
      for (int64_t j = i1; j < i2; ++j) idx.push_back(j);
      auto score = [&](int64_t j) { return std::pow(row[j] / u[size_t(j * cols + j)], 2.0f); };
      std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
        return score(a) < score(b) || (score(a) == score(b) && a > b);
      });
      for (int64_t k = 0; k < count; ++k) gone[size_t(idx[size_t(k)])] = 1;
      for (int64_t i = i1; i < i2; ++i) {
        if (!gone[size_t(i)]) continue;
        const float e = row[i] / u[size_t(i * cols + i)];
        for (int64_t j = i; j < cols; ++j) row[j] -= e * u[size_t(i * cols + j)];
        row[i] = 0.0f;
      }
    }
  }
  return w;
}

TEST(Sweep, LazyBlockUpdatesMatchTheColumnByColumnSweep) {
  const Layer layer = make_layer(300, 16, 80, 21);
  const auto& [n, rows, cols, x, h, u, w] = layer;
  for (int64_t block : {16, 32}) {
    std::vector<float> lazy = w;
    sparsegpt_prune(lazy, rows, cols, u, Pattern{}, 0.5, 2, block);
    const std::vector<float> ref = unblocked_prune(w, rows, cols, u, 0.5, block);
    for (size_t k = 0; k < w.size(); ++k) {
      EXPECT_EQ(lazy[k] == 0.0f, ref[k] == 0.0f) << block << " " << k;  // the same mask
      EXPECT_NEAR(lazy[k], ref[k], 1e-4 * (1 + std::fabs(ref[k]))) << block << " " << k;
    }
  }
}

TEST(Gptq, BelowRoundToNearestOnTheSameGrid) {
  const int64_t n = 400, rows = 24, cols = 96;
  const auto x = correlated_inputs(n, cols, 31);
  const Hessian h = hessian_of(x, n, cols);
  const std::vector<float> w = random_weights(rows, cols, 32);
  const Int8RowGrid int8(QuantMethod::Clip);
  const CoarseGrid int4(7, 32);
  for (const QuantGrid* g : {static_cast<const QuantGrid*>(&int8), static_cast<const QuantGrid*>(&int4)}) {
    GptqOptions o;
    o.grid = g;
    o.block = 32;
    o.threads = 2;
    std::vector<float> q = w;
    const std::vector<GridParams> grids = gptq_sweep(q, rows, cols, h, {}, o);
    const int64_t gs = g->group_size(cols);
    ASSERT_EQ(int64_t(grids.size()), rows * (cols / gs));
    expect_on_grid(q, rows, cols, grids, *g);
    const double e_gptq = output_error(w, q, x, rows, cols, n);
    const double e_rtn = output_error(w, round_to_nearest(w, rows, cols, *g), x, rows, cols, n);
    EXPECT_LT(e_gptq, 0.8 * e_rtn) << gs;
    // Rows are independent: one thread gives the same result.
    std::vector<float> q1 = w;
    o.threads = 1;
    gptq_sweep(q1, rows, cols, h, inverse_factor(h, o.damp, 1), o);
    EXPECT_EQ(q, q1);
  }
}

// A few input channels carry most of the energy and sit last: in source order they are
// rounded when nothing is left to absorb their error; activation order takes them first.
TEST(Gptq, ActivationOrderHelpsWhereLoudInputsComeLast) {
  const int64_t n = 400, rows = 24, cols = 64;
  auto x = correlated_inputs(n, cols, 41);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = cols - 6; j < cols; ++j) x[size_t(t * cols + j)] *= 8.0f;
  const Hessian h = hessian_of(x, n, cols);
  const std::vector<float> w = random_weights(rows, cols, 42);
  const CoarseGrid g(7, 0);
  GptqOptions o;
  o.grid = &g;
  o.block = 16;
  std::vector<float> plain = w, act = w;
  gptq_sweep(plain, rows, cols, h, {}, o);
  o.act_order = true;
  expect_on_grid(act, rows, cols, gptq_sweep(act, rows, cols, h, {}, o), g);
  EXPECT_LT(output_error(w, act, x, rows, cols, n), output_error(w, plain, x, rows, cols, n));
  o.pattern = Pattern{2, 4};
  EXPECT_THROW(gptq_sweep(act, rows, cols, h, {}, o), ParamError);
}

// Pruning and rounding compensated in one sweep against SparseGPT's pruning followed by
// rounding the survivors.
TEST(Gptq, JointPruneAndQuantizeBelowPruneThenRound) {
  const Layer layer = make_layer(400, 24, 96, 51);
  const auto& [n, rows, cols, x, h, u, w] = layer;
  const CoarseGrid coarse(7, 32);
  const Int4GroupGrid int4(32, true, QuantMethod::Clip);
  for (const auto& [p, sparsity, g] : {std::tuple<Pattern, double, const QuantGrid*>{Pattern{}, 0.5, &coarse},
                                       {Pattern{2, 4}, 0.0, &coarse},
                                       {Pattern{2, 4}, 0.0, &int4}}) {
    SCOPED_TRACE(fmt::format("{} {}", p.name(), g == &int4 ? "int4" : "coarse"));
    std::vector<float> pruned = w;
    sparsegpt_prune(pruned, rows, cols, u, p, sparsity, 2, 32);
    std::vector<float> then_round;
    if (g == &int4) {  // the compressor's round-to-nearest of the survivors, as the file stores them
      compress_matrix(pruned, rows, cols, {}, int4_options(32, true, p), "w", nullptr, &then_round);
    } else {
      then_round = round_to_nearest(pruned, rows, cols, *g);
    }
    GptqOptions o;
    o.pattern = p;
    o.sparsity = sparsity;
    o.grid = g;
    o.block = 32;
    std::vector<float> joint = w;
    const std::vector<GridParams> grids = gptq_sweep(joint, rows, cols, h, u, o);
    if (g == &int4) {
      std::vector<float> stored;
      compress_matrix(joint, rows, cols, {}, int4_options(32, true, p), "w", nullptr, &stored, w, grids);
      EXPECT_EQ(stored, joint);
    }
    for (int64_t r = 0; r < rows; ++r) {
      int64_t zeros = 0;
      for (int64_t c = 0; c < cols; ++c) zeros += joint[size_t(r * cols + c)] == 0.0f;
      EXPECT_GE(zeros, cols / 2) << r;  // the mask's zeros, plus any weight rounded to 0
    }
    const double e_pruned = output_error(w, pruned, x, rows, cols, n);
    const double e_joint = output_error(w, joint, x, rows, cols, n);
    const double e_then_round = output_error(w, then_round, x, rows, cols, n);
    // What rounding adds to the pruning's error, compensated or not.
    EXPECT_LT(e_joint - e_pruned, 0.8 * (e_then_round - e_pruned));
  }
}

// The file's grouped grids (int4, int3, int2): GPTQ against the compressor's own
// round-to-nearest (the clip search per group), in source order and in activation order
// (static groups: a group's grid is the source columns', wherever the sweep takes them).
// Stored through compress_matrix with the sweep's grids, the file decodes to exactly the
// sweep's weights.
TEST(Gptq, GroupedBelowRoundToNearest) {
  const int64_t n = 400, rows = 24, cols = 160;  // partial last groups of 64 and 128
  auto x = correlated_inputs(n, cols, 71);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < cols; j += 9) x[size_t(t * cols + j)] *= 4.0f;  // uneven energy: act-order matters
  const Hessian h = hessian_of(x, n, cols);
  const std::vector<float> w = random_weights(rows, cols, 72);
  for (int bits : {4, 3, 2})
  for (int group : {32, 64, 128})
    for (bool zp : {false, true}) {
      const MatrixOptions m = int4_options(group, zp, {}, bits);
      std::vector<float> rtn;
      compress_matrix(w, rows, cols, {}, m, "w", nullptr, &rtn);
      const double e_rtn = output_error(w, rtn, x, rows, cols, n);
      const Int4GroupGrid g(group, zp, QuantMethod::Clip, bits);
      for (bool act : {false, true}) {
        SCOPED_TRACE(fmt::format("int{} g{} zero point {} act-order {}", bits, group, zp, act));
        GptqOptions o;
        o.grid = &g;
        o.act_order = act;
        o.threads = 2;
        std::vector<float> q = w;
        const std::vector<GridParams> grids = gptq_sweep(q, rows, cols, h, {}, o);
        expect_on_grid(q, rows, cols, grids, g);
        EXPECT_LT(output_error(w, q, x, rows, cols, n), 0.8 * e_rtn);
        std::vector<float> stored;
        compress_matrix(q, rows, cols, {}, m, "w", nullptr, &stored, w, grids);
        EXPECT_EQ(stored, q);
      }
    }
}

TEST(Gptq, SizesAreChecked) {
  const int64_t n = 40, cols = 16;
  const Hessian h = hessian_of(correlated_inputs(n, cols, 61), n, cols);
  std::vector<float> w = random_weights(3, cols, 62);
  const Int8RowGrid g(QuantMethod::Absmax);
  GptqOptions o;
  o.grid = &g;
  EXPECT_THROW(gptq_sweep(w, 4, cols, h, {}, o), Error);
  EXPECT_THROW(gptq_sweep(std::span(w).first(30), 2, 15, h, {}, o), Error);
  // A last group that is partial (16 columns in groups of 5), as int4 g128 on 576 columns.
  const CoarseGrid odd(7, 5);
  o.grid = &odd;
  expect_on_grid(w, 3, cols, gptq_sweep(w, 3, cols, h, {}, o), odd);
}

}  // namespace
}  // namespace upg::compress
