// The profiling decorator: every call reaches the wrapped backend unchanged, and the
// report counts calls per op and per weight kind, one-token calls apart from batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "model/profiling-backend.h"
#include "upg/kernels/cpu.h"

namespace upg {
namespace {

const OpProfile* find(const std::vector<OpProfile>& rows, const std::string& name, bool single) {
  auto it = std::find_if(rows.begin(), rows.end(),
                         [&](const OpProfile& p) { return p.name == name && p.single_token == single; });
  return it == rows.end() ? nullptr : &*it;
}

TEST(ProfilingBackend, CountsPerWeightKindAndPassesResultsThrough) {
  auto plain = make_cpu_backend(1);
  auto prof = make_profiling_backend(make_cpu_backend(1));
  EXPECT_EQ(prof->name(), plain->name());
  std::vector<float> w(6 * 4);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 7) - 3.0f;
  LinearWeight a{DType::F32, w.data(), 6, 4}, b = a, other = a;
  a.name = "model.layers.3.mlp.up_proj.weight";
  b.name = "model.layers.12.mlp.up_proj.weight";
  other.name = "lm_head.v2.weight";  // digits inside a field stay
  const std::vector<float> x = {1, 2, 3, 4, -1, 0, 2, 5};
  std::vector<float> y0(12), y1(12);
  plain->matmul(a, x.data(), 2, y0.data());
  prof->matmul(a, x.data(), 2, y1.data());
  EXPECT_EQ(y0, y1);
  prof->matmul(b, x.data(), 1, y1.data());
  prof->matmul(b, x.data(), 1, y1.data());
  prof->matmul(other, x.data(), 1, y1.data());
  // Weights run as one op get one row, named by their kinds with the common parts once.
  LinearWeight gate = a, up = a;
  gate.name = "model.layers.3.mlp.gate_proj.weight";
  up.name = "model.layers.3.mlp.up_proj.weight";
  const std::vector<const LinearWeight*> pair = {&gate, &up};
  std::vector<float> g0(6), u0(6), g1(6), u1(6);
  const std::vector<float*> plain_ys = {g0.data(), u0.data()}, prof_ys = {g1.data(), u1.data()};
  plain->matmul_same_input(pair, x.data(), 1, plain_ys);
  prof->matmul_same_input(pair, x.data(), 1, prof_ys);
  EXPECT_EQ(g0, g1);
  EXPECT_EQ(u0, u1);
  std::vector<float> v = {1, 2, 3, 4};
  prof->add(v.data(), x.data(), 4);

  const std::vector<OpProfile> rows = profile_of(*prof);
  const OpProfile* batch = find(rows, "matmul model.layers.*.mlp.up_proj.weight", false);
  const OpProfile* single = find(rows, "matmul model.layers.*.mlp.up_proj.weight", true);
  ASSERT_TRUE(batch && single);
  EXPECT_EQ(batch->calls, 1);
  EXPECT_EQ(single->calls, 2);
  EXPECT_EQ(single->weight_bytes, 2 * 6 * 4 * 4);
  ASSERT_TRUE(find(rows, "matmul lm_head.v2.weight", true));
  const OpProfile* group = find(rows, "matmul model.layers.*.mlp.{gate,up}_proj.weight", true);
  ASSERT_TRUE(group);
  EXPECT_EQ(group->calls, 1);
  EXPECT_EQ(group->weight_bytes, 2 * 6 * 4 * 4);
  // add sees elements, not tokens: it counts with the matmul before it (one token).
  ASSERT_TRUE(find(rows, "add", true));
  EXPECT_EQ(find(rows, "add", true)->calls, 1);
  EXPECT_FALSE(find(rows, "rmsnorm", true));  // ops never called are left out
  // Batches first, then single tokens.
  EXPECT_FALSE(rows.front().single_token);
  EXPECT_TRUE(rows.back().single_token);
  EXPECT_TRUE(profile_of(*plain).empty());
}

}  // namespace
}  // namespace upg
