// Tiny random models of every supported architecture, saved by transformers as Hugging
// Face directories (fp32 tied Llama, sharded fp16 Mistral, bf16 Qwen2 with q/k/v biases,
// Phi-3 with fused projections and partial rotary): full logits and greedy continuations
// against transformers' fp32 forward. Fixtures: scripts/fixtures/make-tiny-models.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/reference-forward.h"
#include "model/test-util.h"
#include "model/weights.h"
#include "upg/io.h"
#include "upg/model.h"

namespace upg {
namespace {

constexpr float kTol = 1e-4f;  // fp32 both sides; these logits are of magnitude ~1

class GoldenTiny : public ::testing::TestWithParam<std::string> {
 protected:
  nlohmann::json golden() const {
    return test::load_json(test::source_dir() + "/tests/fixtures/tiny/golden.json")["models"][GetParam()];
  }
  std::string dir() const { return test::source_dir() + "/tests/fixtures/tiny/" + GetParam(); }
};

TEST_P(GoldenTiny, LogitsAndContinuationMatchTransformers) {
  const auto g = golden();
  auto model = Model::from_file(dir());
  EXPECT_EQ(model->config().architecture, g["class"].get<std::string>());
  const auto ids = g["input_ids"].get<std::vector<int32_t>>();
  const auto want = g["logits"].get<std::vector<std::vector<float>>>();
  const std::vector<float> got = model->forward(ids);
  const size_t vocab = size_t(model->config().vocab_size);
  ASSERT_EQ(got.size(), ids.size() * vocab);
  for (size_t t = 0; t < ids.size(); ++t)
    for (size_t i = 0; i < vocab; ++i)
      ASSERT_NEAR(got[t * vocab + i], want[t][i], kTol) << "position " << t << " id " << i;

  const auto cont = g["continuation"].get<std::vector<int32_t>>();
  const auto margins = g["continuation_margins"].get<std::vector<float>>();
  Batch b;
  for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], int32_t(i), 0, i + 1 == ids.size());
  for (size_t step = 0; step < cont.size(); ++step) {
    auto logits = model->decode(b);
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next != cont[step]) {  // only a reference near-tie may flip
      EXPECT_LT(margins[step], 2 * kTol) << "step " << step;
      break;
    }
    b.clear();
    b.add(next, int32_t(ids.size() + step), 0, true);
  }
}

// The reference forward pass is itself checked against transformers, so a bug shared by
// both forward passes (rope, GQA, fused projections) cannot hide.
TEST_P(GoldenTiny, ReferenceForwardMatchesTransformers) {
  const auto g = golden();
  ModelSource src = load_model_source(dir());
  ModelWeights w = bind_weights(src);
  ReferenceForward ref(src.config, w, 32);
  const auto ids = g["input_ids"].get<std::vector<int32_t>>();
  const auto want = g["logits"].get<std::vector<std::vector<float>>>();
  for (size_t t = 0; t < ids.size(); ++t) {
    const auto& got = ref.step(ids[t], int(t));
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[t][i], kTol) << "position " << t << " id " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, GoldenTiny, ::testing::Values("llama", "mistral", "qwen2", "phi3"));

}  // namespace
}  // namespace upg
