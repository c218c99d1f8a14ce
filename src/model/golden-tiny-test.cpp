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
#include "upg/core/error.h"
#include "upg/io/io.h"
#include "upg/model/model.h"

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
  ModelOptions o;
  o.kv_type = DType::F32;  // transformers keeps fp32 keys and values
  auto model = Model::from_file(dir(), o);
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

// The default f16 KV cache rounds keys and values to 2^-11: the logits stay within a
// small bound of the f32 cache's, with the same greedy tokens; a type the backend
// cannot keep is refused at load, naming it.
TEST(KvCacheType, F16AndInt8StayCloseToF32AndOthersAreRefused) {
  const std::string dir = test::source_dir() + "/tests/fixtures/tiny/llama";
  const std::vector<int32_t> ids = {1, 15, 27, 3, 99, 42, 7, 64, 5, 11};
  ModelOptions o;
  o.kv_type = DType::F32;
  const std::vector<float> f32 = Model::from_file(dir, o)->forward(ids);
  o.kv_type = DType::F16;
  const std::vector<float> f16 = Model::from_file(dir, o)->forward(ids);
  ASSERT_EQ(f16.size(), f32.size());
  float worst = 0;
  for (size_t i = 0; i < f16.size(); ++i) worst = std::max(worst, std::fabs(f16[i] - f32[i]));
  EXPECT_GT(worst, 0.0f) << "the f16 cache was not used";
  EXPECT_LT(worst, 5e-3f);
  // int8 with one scale per row rounds to 1/254 of the row's largest value: on this
  // model (logits up to 4.6) the logits move by 0.055, and a broken cache by whole units.
  o.kv_type = DType::I8;
  const std::vector<float> i8 = Model::from_file(dir, o)->forward(ids);
  ASSERT_EQ(i8.size(), f32.size());
  float worst8 = 0;
  for (size_t i = 0; i < i8.size(); ++i) worst8 = std::max(worst8, std::fabs(i8[i] - f32[i]));
  EXPECT_GT(worst8, worst) << "the int8 cache was not used";
  EXPECT_LT(worst8, 0.1f);
  o.kv_type = DType::BF16;
  try {
    Model::from_file(dir, o);
    ADD_FAILURE() << "a bf16 KV cache was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KV cache of BF16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upg
