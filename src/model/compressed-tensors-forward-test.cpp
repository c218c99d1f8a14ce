// Checkpoints in the compressed-tensors format, made by the PyPI package itself
// (scripts/fixtures/make-compressed-tensors.py): each loads through config.json's
// quantization_config, and its logits match transformers' fp32 forward over the weights
// the package decompresses. The reference forward pass (fp32 activations, every weight
// decoded) must agree to fp32 noise, which only an exact mapping gives; the CPU backend
// (int8 activations per 32 columns) within its quantization noise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/reference-forward.h"
#include "model/test-util.h"
#include "model/weights.h"
#include "upg/io/io.h"
#include "upg/model/model.h"

namespace upg {
namespace {

constexpr float kRefTol = 1e-4f;   // fp32 both sides; logits of magnitude ~1-4
// int8 activations per 32 columns: a few percent of the largest logit, the bound the
// tiny-model tests of the fast kernels use (compressed-forward-test.cpp).
constexpr float kFastRel = 0.04f;

class CompressedTensors : public ::testing::TestWithParam<std::string> {
 protected:
  static nlohmann::json golden() {
    return test::load_json(test::source_dir() + "/tests/fixtures/compressed-tensors/golden.json");
  }
  std::string dir() const { return test::source_dir() + "/tests/fixtures/compressed-tensors/" + GetParam(); }
};

TEST_P(CompressedTensors, ReferenceForwardMatchesTheDecompressedWeights) {
  const auto g = golden();
  const auto ids = g["input_ids"].get<std::vector<int32_t>>();
  const auto positions = g["positions"].get<std::vector<size_t>>();
  const auto want = g["models"][GetParam()]["logits"].get<std::vector<std::vector<float>>>();
  ModelSource src = load_model_source(dir());
  ModelWeights w = bind_weights(src);
  ReferenceForward ref(src.config, w, 32);
  size_t next = 0;
  for (size_t t = 0; t < ids.size() && next < positions.size(); ++t) {
    const auto& got = ref.step(ids[t], int(t));
    if (t != positions[next]) continue;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[next][i], kRefTol) << GetParam() << " position " << t << " id " << i;
    ++next;
  }
  EXPECT_EQ(next, positions.size());
}

TEST_P(CompressedTensors, CpuBackendStaysCloseAndPicksTheSameTokens) {
  const auto g = golden();
  const auto ids = g["input_ids"].get<std::vector<int32_t>>();
  const auto positions = g["positions"].get<std::vector<size_t>>();
  const auto want = g["models"][GetParam()]["logits"].get<std::vector<std::vector<float>>>();
  ModelOptions o;
  o.kv_type = DType::F32;
  auto model = Model::from_file(dir(), o);
  const std::vector<float> got = model->forward(ids);
  const size_t vocab = size_t(model->config().vocab_size);
  for (size_t p = 0; p < positions.size(); ++p) {
    const float* row = got.data() + positions[p] * vocab;
    float worst = 0, largest = 0;
    for (size_t i = 0; i < vocab; ++i) {
      worst = std::max(worst, std::fabs(row[i] - want[p][i]));
      largest = std::max(largest, std::fabs(want[p][i]));
    }
    const float tol = kFastRel * largest;
    EXPECT_LT(worst, tol) << GetParam() << " position " << positions[p];
    // Greedy picks the reference's top token unless another was within the noise of it.
    const size_t top = size_t(std::max_element(want[p].begin(), want[p].end()) - want[p].begin());
    const size_t got_top = size_t(std::max_element(row, row + vocab) - row);
    if (got_top != top) EXPECT_LT(want[p][top] - want[p][got_top], 2 * tol) << "position " << positions[p];
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, CompressedTensors,
                         ::testing::Values("w4-mixed", "w4-channel", "w8-channel", "sparse24", "sparse24-w8",
                                           "bitmask-w8"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace upg
