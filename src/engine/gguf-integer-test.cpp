// The default model's Q4_1 GGUF through the integer kernels (weights kept in their
// blocks, int8 activations) against the float path (every weight dequantized to fp32 at
// load), on the same text. Skipped when the default model is absent.
//
// Tolerance: the integer path rounds activations to int8 per 32 columns, as every int8
// kernel does; the weights are the same numbers on both paths (Q4_1's scales are fp16
// in the file and stay exact). The UPG dense int8 files pay 0.0015 nats of mean NLL for
// that rounding (fast-kernels-ppl-test.cpp), so 0.02 nats is the bound here too; a wrong
// kernel or a misread block moves it by whole nats.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "core/test-paths.h"
#include "upg/model/model.h"
#include "upg/engine/perplexity.h"

namespace upg {
namespace {

std::unique_ptr<Model> load(bool integer) {
  ModelOptions o;
  o.n_threads = 2;
  o.context_length = 128;
  if (!integer) o.load.dequant_to = DType::F32;
  return Model::from_file(test::default_model_path(), o);
}

TEST(GgufInteger, PerplexityMatchesTheFloatPath) {
  if (!std::ifstream(test::default_model_path()).good())
    GTEST_SKIP() << "default model not found at " << test::default_model_path();
  std::ifstream in(test::fixture("eval/kjv-slice.txt"));
  std::stringstream text;
  text << in.rdbuf();
  double nll[2] = {0, 0};
  for (const bool integer : {true, false}) {
    auto m = load(integer);
    std::vector<int32_t> ids = m->tokenizer().encode(text.str());
    ids.resize(256);
    nll[integer] = perplexity(*m, ids, 128).mean_nll;
  }
  RecordProperty("integer_ppl", std::to_string(std::exp(nll[1])));
  RecordProperty("float_ppl", std::to_string(std::exp(nll[0])));
  EXPECT_NEAR(nll[1], nll[0], 0.02) << "integer " << std::exp(nll[1]) << ", float " << std::exp(nll[0]);
}

// Greedy choices agree wherever the float path is not near a tie. Int8 activations move
// a logit by up to about 0.7 on this model (the chat prompt "What is the capital of
// France?" has "The" 25.32 and "L" 25.24 on the float path, 24.60 and 24.98 on the
// integer one: a tie that rounding flips, as llama.cpp's Q4_1 x Q8_1 dot products would),
// so positions whose top two float logits are within 1.5 of each other are not compared.
TEST(GgufInteger, GreedyChoicesMatchTheFloatPathAwayFromTies) {
  if (!std::ifstream(test::default_model_path()).good())
    GTEST_SKIP() << "default model not found at " << test::default_model_path();
  std::ifstream in(test::fixture("eval/kjv-slice.txt"));
  std::stringstream text;
  text << in.rdbuf();
  std::vector<float> logits[2];
  int64_t vocab = 0;
  std::vector<int32_t> ids;
  for (const bool integer : {true, false}) {
    auto m = load(integer);
    ids = m->tokenizer().encode(text.str());
    ids.resize(96);
    Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], int32_t(i), 0, true);
    const std::span<const float> l = m->decode(b);
    logits[integer].assign(l.begin(), l.end());
    vocab = m->config().vocab_size;
  }
  int compared = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* f = logits[0].data() + i * size_t(vocab);
    const float* q = logits[1].data() + i * size_t(vocab);
    const int64_t best = std::max_element(f, f + vocab) - f;
    float second = -1e30f;
    for (int64_t k = 0; k < vocab; ++k)
      if (k != best) second = std::max(second, f[k]);
    if (f[best] - second < 1.5f) continue;
    ++compared;
    EXPECT_EQ(std::max_element(q, q + vocab) - q, best) << "position " << i;
  }
  RecordProperty("positions_compared", compared);
  EXPECT_GT(compared, 20);
}

}  // namespace
}  // namespace upg
