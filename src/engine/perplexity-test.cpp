// Perplexity: against transformers (tests/fixtures/eval/ppl-golden.json, same windows),
// against NLL computed here from Model::forward logits, its window bookkeeping and its
// errors; on the default model (skipped when absent) it must be sane and deterministic.
#include "upg/engine/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/test-paths.h"
#include "upg/core/error.h"
#include "upg/model/model.h"

namespace upg {
namespace {

nlohmann::json golden() {
  std::ifstream in(test::fixture("eval/ppl-golden.json"));
  if (!in) throw std::runtime_error("missing fixture eval/ppl-golden.json");
  return nlohmann::json::parse(in);
}

std::unique_ptr<Model> tiny_llama(int ctx = 256) {
  ModelOptions o;
  o.context_length = ctx;
  o.n_threads = 2;
  o.kv_type = DType::F32;  // compared with transformers' fp32 to 1e-5
  return Model::from_file(test::fixture("tiny/llama"), o);
}

// NLL of every scored token computed the long way: a fresh full forward per window,
// log-softmax in long double.
// second_half: llama-perplexity's way, whole windows only, logits from ctx / 2 on.
double hand_mean_nll(Model& m, const std::vector<int32_t>& ids, int ctx, int64_t* scored, bool second_half = false) {
  const size_t vocab = size_t(m.config().vocab_size);
  long double sum = 0;
  *scored = 0;
  for (size_t w0 = 0; w0 < ids.size(); w0 += size_t(ctx)) {
    const std::vector<int32_t> win(ids.begin() + long(w0), ids.begin() + long(std::min(ids.size(), w0 + size_t(ctx))));
    if (win.size() < 2 || (second_half && win.size() < size_t(ctx))) continue;
    const std::vector<float> logits = m.forward(win);
    for (size_t p = second_half ? size_t(ctx / 2) : 0; p + 1 < win.size(); ++p) {
      const float* l = logits.data() + p * vocab;
      long double z = 0;
      for (size_t i = 0; i < vocab; ++i) z += std::exp((long double)l[i]);
      sum += std::log(z) - (long double)l[win[p + 1]];
      ++*scored;
    }
  }
  return double(sum / (long double)*scored);
}

TEST(Perplexity, TinyLlamaMatchesTransformers) {
  const auto g = golden()["cases"]["tiny_llama"];
  const auto ids = g["token_ids"].get<std::vector<int32_t>>();
  auto m = tiny_llama();
  const PerplexityResult r = perplexity(*m, ids, g["ctx"].get<int>());
  EXPECT_EQ(r.n_scored, g["n_scored"].get<int64_t>());
  EXPECT_EQ(r.n_windows, int(g["windows"].size()));
  EXPECT_EQ(r.n_tokens, int64_t(ids.size()));
  EXPECT_NEAR(r.mean_nll, g["mean_nll"].get<double>(), 1e-5);
  EXPECT_NEAR(r.ppl / g["ppl"].get<double>(), 1.0, 1e-5);
}

TEST(Perplexity, TinyLlamaMatchesHandComputedNll) {
  auto m = tiny_llama();
  std::vector<int32_t> ids;
  for (int i = 0; i < 71; ++i) ids.push_back((i * 37 + 11) % 256);
  // 71 tokens, ctx 16: four full windows and one of 7 (15 * 4 + 6 scored tokens).
  int64_t scored = 0;
  const double want = hand_mean_nll(*m, ids, 16, &scored);
  ASSERT_EQ(scored, 66);
  const PerplexityResult r = perplexity(*m, ids, 16);
  EXPECT_EQ(r.n_scored, 66);
  EXPECT_EQ(r.n_windows, 5);
  EXPECT_NEAR(r.mean_nll, want, 1e-9);
  EXPECT_NEAR(r.ppl, std::exp(want), 1e-9 * std::exp(want));

  // 65 tokens: the trailing window of one token has nothing to score and is dropped.
  ids.resize(65);
  const double want65 = hand_mean_nll(*m, ids, 16, &scored);
  const PerplexityResult r65 = perplexity(*m, ids, 16);
  EXPECT_EQ(r65.n_scored, 60);
  EXPECT_EQ(r65.n_tokens, 64);
  EXPECT_EQ(r65.n_windows, 4);
  EXPECT_NEAR(r65.mean_nll, want65, 1e-9);
}

// SecondHalf, as llama.cpp's llama-perplexity: 71 tokens at ctx 16 are four whole
// windows (the 7 left over are not run), each scoring positions 8..14 (7 tokens).
TEST(Perplexity, SecondHalfScoresAsLlamaCpp) {
  auto m = tiny_llama();
  std::vector<int32_t> ids;
  for (int i = 0; i < 71; ++i) ids.push_back((i * 37 + 11) % 256);
  int64_t scored = 0;
  const double want = hand_mean_nll(*m, ids, 16, &scored, true);
  ASSERT_EQ(scored, 28);
  const PerplexityResult r = perplexity(*m, ids, 16, {}, PerplexityScoring::SecondHalf);
  EXPECT_EQ(r.n_scored, 28);
  EXPECT_EQ(r.n_windows, 4);
  EXPECT_EQ(r.n_tokens, 64);
  EXPECT_NEAR(r.mean_nll, want, 1e-9);
  EXPECT_THROW(perplexity(*m, std::vector<int32_t>(10, 1), 16, {}, PerplexityScoring::SecondHalf), Error);
}

TEST(Perplexity, ProgressReachesTheTotal) {
  auto m = tiny_llama();
  std::vector<int32_t> ids(40, 7);
  int64_t last_done = -1, last_total = -1, calls = 0;
  double last_ppl = 0;
  const PerplexityResult r = perplexity(*m, ids, 16, [&](int64_t done, int64_t total, double ppl) {
    EXPECT_GT(done, last_done);
    last_done = done, last_total = total, last_ppl = ppl;
    ++calls;
  });
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(last_done, 40);
  EXPECT_EQ(last_total, 40);
  EXPECT_DOUBLE_EQ(last_ppl, r.ppl);
}

TEST(Perplexity, BadArgumentsAreErrors) {
  auto m = tiny_llama(64);
  const std::vector<int32_t> ids(10, 1);
  EXPECT_THROW(perplexity(*m, ids, 1), Error);
  EXPECT_THROW(perplexity(*m, ids, 65), Error);  // past the model's context length
  EXPECT_THROW(perplexity(*m, {5}, 16), Error);
  EXPECT_THROW(perplexity(*m, {5, 256, 3}, 16), Error);
  EXPECT_THROW(perplexity(*m, {5, -1, 3}, 16), Error);
}

class DefaultModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(test::default_model_path()).good())
      GTEST_SKIP() << "default model not found at " << test::default_model_path();
  }
  static std::unique_ptr<Model> load(int ctx, DType kv_type = DType::F16) {
    ModelOptions o;
    o.kv_type = kv_type;
    o.context_length = ctx;
    o.n_threads = 2;
    o.load.dequant_to = DType::F32;  // compared with transformers' fp32 dequantization
    return Model::from_file(test::default_model_path(), o);
  }
};

TEST_F(DefaultModel, EvalSliceMatchesTransformersAndIsDeterministic) {
  const auto g = golden()["cases"]["smollm2"];
  const auto want_ids = g["token_ids"].get<std::vector<int32_t>>();
  auto m = load(256);
  std::ifstream in(test::fixture("eval/kjv-slice.txt"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<int32_t> ids = m->tokenizer().encode(ss.str(), false, false);
  ASSERT_GE(ids.size(), want_ids.size());
  ids.resize(want_ids.size());
  ASSERT_EQ(ids, want_ids) << "the tokenizer disagrees with the reference on the eval text";

  const PerplexityResult a = perplexity(*m, ids, 256);
  EXPECT_TRUE(std::isfinite(a.ppl));
  EXPECT_GT(a.ppl, 2.0);
  EXPECT_LT(a.ppl, 100.0);
  EXPECT_EQ(a.n_scored, g["n_scored"].get<int64_t>());
  // fp32 both sides with different summation orders over 30 layers.
  EXPECT_NEAR(a.mean_nll, g["mean_nll"].get<double>(), 2e-4);
  const PerplexityResult b = perplexity(*m, ids, 256);
  EXPECT_EQ(a.mean_nll, b.mean_nll);
}

// A window longer than one decode chunk (256 tokens) is scored in pieces that continue
// the same sequence; the result must equal one whole-window forward.
TEST_F(DefaultModel, WindowsLongerThanAChunk) {
  auto m = load(300);
  const auto ids = golden()["cases"]["smollm2"]["token_ids"].get<std::vector<int32_t>>();
  const std::vector<int32_t> first(ids.begin(), ids.begin() + 300);
  int64_t scored = 0;
  const double want = hand_mean_nll(*m, first, 300, &scored);
  const PerplexityResult r = perplexity(*m, first, 300);
  EXPECT_EQ(r.n_scored, 299);
  EXPECT_NEAR(r.mean_nll, want, 1e-9);
}

// The int8 KV cache (one scale per head and position) costs little quality: over 2048
// KJV tokens, perplexity 5.4089 with f16 and 5.4255 with int8 (0.003 nats); over the
// golden ids 0.0008 nats. An error in its scales or rows costs far more.
TEST_F(DefaultModel, Int8KvCacheStaysCloseToF16) {
  const auto all = golden()["cases"]["smollm2"]["token_ids"].get<std::vector<int32_t>>();
  const std::vector<int32_t> ids(all.begin(), all.begin() + std::min<size_t>(all.size(), 512));
  const PerplexityResult f16 = perplexity(*load(256, DType::F16), ids, 256);
  const PerplexityResult i8 = perplexity(*load(256, DType::I8), ids, 256);
  EXPECT_NE(i8.mean_nll, f16.mean_nll) << "the int8 cache was not used";
  EXPECT_NEAR(i8.mean_nll, f16.mean_nll, 0.01);
}

}  // namespace
}  // namespace upg
