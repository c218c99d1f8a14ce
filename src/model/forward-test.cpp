// The threaded, SIMD forward pass against the plain reference forward pass, on every
// SIMD target this CPU runs, for prefill (one batch) and for decode (token by token).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/forward.h"
#include "model/reference-forward.h"
#include "model/test-util.h"
#include "upg/core/error.h"
#include "upg/io/io.h"
#include "upg/kernels/cpu.h"

namespace upg {
namespace {

constexpr int kCtx = 64;

struct Loaded {
  ModelSource src;
  ModelWeights w;
};

std::unique_ptr<Loaded> load(DType dequant_to) {
  if (!test::file_exists(test::default_model_path())) return nullptr;
  auto l = std::make_unique<Loaded>();
  LoadOptions o;
  o.dequant_to = dequant_to;
  l->src = load_model_source(test::default_model_path(), o);
  l->w = bind_weights(l->src);
  return l;
}

// Reference logits for every position of `tokens`.
std::vector<std::vector<float>> reference(const Loaded& l, const std::vector<int32_t>& tokens) {
  ReferenceForward ref(l.src.config, l.w, kCtx);
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < tokens.size(); ++i) out.push_back(ref.step(tokens[i], int(i)));
  return out;
}

void expect_close(std::span<const float> got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  float worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const float d = std::fabs(got[i] - want[i]);
    if (!(d <= worst)) worst = d, at = i;
  }
  // Both sides are fp32 with different summation orders (the reference accumulates in
  // double): 1e-3 on logits of magnitude ~20.
  EXPECT_LT(worst, 1e-3f) << what << ": worst difference at id " << at;
}

class ForwardVsReference : public ::testing::TestWithParam<DType> {};

TEST_P(ForwardVsReference, EveryTargetPrefillAndDecode) {
  auto l = load(GetParam());
  if (!l) GTEST_SKIP() << "default model not found at " << test::default_model_path();
  const std::vector<int32_t> tokens = {1, 504, 2365, 6354, 16438, 282, 253, 30, 216};
  const auto want = reference(*l, tokens);
  const size_t vocab = size_t(l->src.config.vocab_size);
  for (const std::string& target : kernels::available_targets()) {
    SCOPED_TRACE("target " + target);
    ASSERT_TRUE(kernels::force_target(target));
    auto backend = make_cpu_backend(2);
    ForwardPass fwd(l->src.config, l->w, *backend, kCtx, 2);
    // Prefill the whole prompt as sequence 1, all logits wanted.
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), 1, true);
    auto all = fwd.run(b);
    for (size_t i = 0; i < tokens.size(); ++i)
      expect_close(all.subspan(i * vocab, vocab), want[i], "prefill position " + std::to_string(i));
    // Decode token by token as sequence 0.
    for (size_t i = 0; i < tokens.size(); ++i) {
      b.clear();
      b.add(tokens[i], int32_t(i), 0, true);
      expect_close(fwd.run(b), want[i], "decode position " + std::to_string(i));
    }
  }
  kernels::force_target("");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ForwardVsReference, ::testing::Values(DType::F32, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Through block tables: a prompt written into scattered blocks of a pool (blocks of 4,
// in no order), then decoded token by token, reads as the reference does.
TEST(ForwardPaged, ScatteredBlockTablesMatchTheReference) {
  auto l = load(DType::F32);
  if (!l) GTEST_SKIP() << "default model not found";
  const std::vector<int32_t> tokens = {1, 504, 2365, 6354, 16438, 282, 253, 30, 216};
  const auto want = reference(*l, tokens);
  const size_t vocab = size_t(l->src.config.vocab_size);
  auto backend = make_cpu_backend(2);
  ForwardPass fwd(l->src.config, l->w, *backend, kCtx, 1, 256, DType::F32, 4, 12);
  const std::vector<int32_t> table = {9, 2, 5};
  Batch b;
  const int32_t t = b.add_table(table);
  for (size_t i = 0; i < 5; ++i) b.add(tokens[i], int32_t(i), 0, true, t);
  auto all = fwd.run(b);
  for (size_t i = 0; i < 5; ++i)
    expect_close(all.subspan(i * vocab, vocab), want[i], "prefill position " + std::to_string(i));
  for (size_t i = 5; i < tokens.size(); ++i) {
    b.clear();
    b.add(tokens[i], int32_t(i), 0, true, b.add_table(table));
    expect_close(fwd.run(b), want[i], "decode position " + std::to_string(i));
  }
  // Past the table's blocks, a block outside the pool, a token without a table, and a
  // batch without tables on a pool smaller than a context are errors, not stray writes.
  b.clear();
  b.add(1, 12, 0, true, b.add_table(table));
  EXPECT_THROW(fwd.run(b), Error);
  b.clear();
  b.add(1, 0, 0, true, b.add_table(std::vector<int32_t>{12}));
  EXPECT_THROW(fwd.run(b), Error);
  b.clear();
  b.add(1, 0, 0, true, b.add_table(table));
  b.add(1, 1, 0, true);
  EXPECT_THROW(fwd.run(b), Error);
  b.clear();
  b.add(1, 0, 0, true);
  EXPECT_THROW(fwd.run(b), Error);
}

// Batch::kGreedy rows send back their argmax only, in batch order, beside kLogits rows
// and rows that want nothing, with and without token classes (which reorder a ubatch).
TEST(ForwardGreedy, PicksAreTheLogitsArgmaxInBatchOrder) {
  auto l = load(DType::F32);
  if (!l) GTEST_SKIP() << "default model not found";
  const std::vector<int32_t> tokens = {1, 504, 2365, 6354, 16438, 282};
  const std::vector<uint8_t> wants = {Batch::kGreedy, Batch::kLogits, Batch::kNone,
                                      Batch::kGreedy, Batch::kGreedy, Batch::kLogits};
  const size_t vocab = size_t(l->src.config.vocab_size);
  auto backend = make_cpu_backend(2);
  for (bool classes : {false, true}) {
    SCOPED_TRACE(classes ? "with classes" : "without classes");
    ForwardPass all(l->src.config, l->w, *backend, kCtx, 6), mixed(l->src.config, l->w, *backend, kCtx, 6);
    // One token in each of six sequences (0 .. 5), every row's logits from `all`.
    Batch b;
    for (size_t s = 0; s < tokens.size(); ++s) b.add(tokens[s], 0, int32_t(s), true);
    if (classes) b.prompt = {1, 0, 1, 0, 0, 1};
    const std::span<const float> la = all.run(b);
    const std::vector<float> logits(la.begin(), la.end());
    b.want_logits = wants;
    const std::span<const float> lm = mixed.run(b);
    const std::vector<float> got(lm.begin(), lm.end());
    std::vector<int32_t> picks;
    std::vector<float> rows;
    for (size_t s = 0; s < tokens.size(); ++s) {
      const auto row = logits.begin() + std::ptrdiff_t(s * vocab);
      if (wants[s] == Batch::kGreedy) picks.push_back(int32_t(std::max_element(row, row + std::ptrdiff_t(vocab)) - row));
      if (wants[s] == Batch::kLogits) rows.insert(rows.end(), row, row + std::ptrdiff_t(vocab));
    }
    EXPECT_EQ(got, rows);
    EXPECT_EQ(std::vector<int32_t>(mixed.greedy().begin(), mixed.greedy().end()), picks);
  }
}

TEST(ForwardErrors, PositionPastContextAndBadTokenAreErrors) {
  auto l = load(DType::F32);
  if (!l) GTEST_SKIP() << "default model not found";
  auto backend = make_cpu_backend(1);
  ForwardPass fwd(l->src.config, l->w, *backend, 8, 1);
  Batch b;
  b.add(1, 8, 0, true);
  EXPECT_THROW(fwd.run(b), Error);
  b.clear();
  b.add(l->src.config.vocab_size, 0, 0, true);
  EXPECT_THROW(fwd.run(b), Error);
  b.clear();
  b.add(1, 0, 1, true);  // only one sequence slot
  EXPECT_THROW(fwd.run(b), Error);
}

}  // namespace
}  // namespace upg
