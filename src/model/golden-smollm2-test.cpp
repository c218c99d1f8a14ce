// The default model against transformers (fp32, same GGUF): logits at chosen positions
// and 64-token greedy continuations. Fixtures: scripts/fixtures/make-model-fixtures.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/test-util.h"
#include "upg/model/model.h"

namespace upg {
namespace {

// fp32 on both sides, different summation orders: observed differences are ~1e-4 on
// logits of magnitude ~20; 2e-3 leaves room for other CPUs and SIMD targets.
constexpr float kLogitTol = 2e-3f;

class GoldenSmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::file_exists(test::default_model_path())) return;
    ModelOptions o;
    o.context_length = 256;
    o.load.dequant_to = DType::F32;  // the reference computes in fp32
    o.kv_type = DType::F32;
    model_ = Model::from_file(test::default_model_path(), o).release();
    golden_ = new nlohmann::json(test::load_json(test::source_dir() + "/tests/fixtures/smollm2-golden.json"));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete golden_;
    model_ = nullptr;
    golden_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "default model not found at " << test::default_model_path()
                              << " (scripts/fetch-model.sh fetches it)";
  }
  static Model* model_;
  static nlohmann::json* golden_;
};
Model* GoldenSmolLM2::model_ = nullptr;
nlohmann::json* GoldenSmolLM2::golden_ = nullptr;

TEST_F(GoldenSmolLM2, LogitsMatchTransformers) {
  const auto& g = *golden_;
  const auto probe_ids = g["probe_ids"].get<std::vector<int>>();
  const size_t vocab = size_t(model_->config().vocab_size);
  for (const auto& p : g["prompts"]) {
    SCOPED_TRACE(p["name"].get<std::string>());
    const auto ids = p["ids"].get<std::vector<int32_t>>();
    const std::vector<float> logits = model_->forward(ids);
    ASSERT_EQ(logits.size(), ids.size() * vocab);
    for (const auto& pos : p["positions"]) {
      const int at = pos["pos"];
      SCOPED_TRACE("position " + std::to_string(at));
      const float* row = logits.data() + size_t(at) * vocab;
      EXPECT_EQ(std::max_element(row, row + vocab) - row, pos["argmax"].get<int>());
      for (const auto& pair : pos["top"]) EXPECT_NEAR(row[pair[0].get<int>()], pair[1].get<float>(), kLogitTol);
      const auto probes = pos["probe_logits"].get<std::vector<float>>();
      for (size_t i = 0; i < probe_ids.size(); ++i) EXPECT_NEAR(row[probe_ids[i]], probes[i], kLogitTol);
      double mean = 0;
      for (size_t i = 0; i < vocab; ++i) mean += row[i];
      mean /= double(vocab);
      EXPECT_NEAR(mean, pos["mean"].get<double>(), 1e-3);
    }
  }
}

TEST_F(GoldenSmolLM2, GreedyContinuationMatchesTransformers) {
  const size_t vocab = size_t(model_->config().vocab_size);
  for (const auto& p : (*golden_)["prompts"]) {
    SCOPED_TRACE(p["name"].get<std::string>());
    const auto ids = p["ids"].get<std::vector<int32_t>>();
    const auto expected = p["continuation"]["ids"].get<std::vector<int32_t>>();
    const auto margins = p["continuation"]["margins"].get<std::vector<float>>();
    Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], int32_t(i), 0, i + 1 == ids.size());
    for (size_t step = 0; step < expected.size(); ++step) {
      auto logits = model_->decode(b);
      ASSERT_EQ(logits.size(), vocab);
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      // A flip is only acceptable where the reference itself had a near-tie (top-1 and
      // top-2 within the logit tolerance): then both answers are right, and the rest of
      // the continuation legitimately differs.
      if (next != expected[step]) {
        EXPECT_LT(margins[step], 2 * kLogitTol) << "step " << step << ": got " << next << ", expected "
                                                << expected[step] << " (margin " << margins[step] << ")";
        break;
      }
      b.clear();
      b.add(next, int32_t(ids.size() + step), 0, true);
    }
  }
}

}  // namespace
}  // namespace upg

namespace upg {
namespace {

// The default load path dequantizes to F16 and keeps an F16 KV cache. Its logits move by
// the F16 rounding of the weights and of the keys and values only; bound that drift
// against the fp32 reference and require the same argmax.
TEST(GoldenSmolLM2F16, LogitsStayCloseToTransformers) {
  if (!test::file_exists(test::default_model_path())) GTEST_SKIP() << "default model not found";
  ModelOptions o;
  o.context_length = 64;
  o.load.dequant_to = DType::F16;
  auto model = Model::from_file(test::default_model_path(), o);
  const auto g = test::load_json(test::source_dir() + "/tests/fixtures/smollm2-golden.json");
  const size_t vocab = size_t(model->config().vocab_size);
  float worst = 0;
  for (const auto& p : g["prompts"]) {
    const auto ids = p["ids"].get<std::vector<int32_t>>();
    const std::vector<float> logits = model->forward(ids);
    for (const auto& pos : p["positions"]) {
      const float* row = logits.data() + size_t(pos["pos"].get<int>()) * vocab;
      EXPECT_EQ(std::max_element(row, row + vocab) - row, pos["argmax"].get<int>());
      for (const auto& pair : pos["top"])
        worst = std::max(worst, std::fabs(row[pair[0].get<int>()] - pair[1].get<float>()));
    }
  }
  std::printf("worst F16 logit drift: %g\n", worst);
  EXPECT_LT(worst, 0.05f);
}

}  // namespace
}  // namespace upg
