// What the engine gives a front end besides token ids: text (stop strings held back,
// UTF-8 never split), logprobs, usage and the monitoring counters. Text on the default
// model (skipped without it); logprobs and counters on the tiny fixture model, so they
// also run under the sanitizers.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>

#include "core/test-paths.h"
#include "engine/test-tiny-model.h"
#include "upg/core/error.h"
#include "upg/engine/engine.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<std::string> texts;  // per event, the finished one last
  std::string text;
  RequestEvent last;
};

std::map<int64_t, Outcome> run_all(Engine& e) {
  std::map<int64_t, Outcome> out;
  for (int guard = 0; !e.idle() && guard < 10000; ++guard)
    for (RequestEvent& ev : e.step()) {
      Outcome& o = out[ev.id];
      if (ev.token >= 0) o.tokens.push_back(ev.token);
      o.texts.push_back(ev.text);
      o.text += ev.text;
      if (ev.finished) o.last = ev;
    }
  EXPECT_TRUE(e.idle());
  return out;
}

Outcome run_one(Engine& e, Request r) {
  const int64_t id = e.submit(std::move(r));
  return run_all(e).at(id);
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

class EngineTextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::ifstream(test::default_model_path()).good()) return;
    ModelOptions o;
    o.context_length = 256;
    o.n_threads = 2;
    model_ = Model::from_file(test::default_model_path(), o).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "default model not found at " << test::default_model_path();
  }
  static Request chat(const std::string& user, int n) {
    const Tokenizer& tok = model_->tokenizer();
    Request r;
    r.prompt = tok.encode(tok.apply_chat_template({{"user", user}}, true), tok.add_bos(), true);
    r.sampling.temperature = 0;
    r.max_new_tokens = n;
    return r;
  }
  static Model* model_;
};
Model* EngineTextTest::model_ = nullptr;

TEST_F(EngineTextTest, StopsAtTheEndOfTurnByDefaultAndNotWithIgnoreEos) {
  Engine e(*model_);
  const Outcome stopped = run_one(e, chat("What is 2+2?", 32));
  EXPECT_EQ(stopped.last.reason, StopReason::kEos);
  Request r = chat("What is 2+2?", 32);
  r.ignore_eos = true;
  const Outcome on = run_one(e, r);
  EXPECT_EQ(on.last.reason, StopReason::kLength);
  EXPECT_EQ(on.last.generated_tokens, 32);
  ASSERT_GT(on.tokens.size(), stopped.tokens.size());
  EXPECT_TRUE(std::equal(stopped.tokens.begin(), stopped.tokens.end(), on.tokens.begin()));
}

TEST_F(EngineTextTest, TextEqualsTheDecodedTokensAndNeverSplitsACharacter) {
  Engine e(*model_);
  Request r = chat("Write the Japanese word for Japan, 日本, three times, then three emoji like 👍🏽.", 48);
  r.ignore_eos = true;
  const Outcome o = run_one(e, r);
  const Tokenizer& tok = model_->tokenizer();
  EXPECT_EQ(o.text, tok.decode(o.tokens, true));
  for (const std::string& t : o.texts) EXPECT_TRUE(valid_utf8(t)) << t;
  // The test means something only if some token alone is not whole characters.
  bool split = false;
  for (int32_t t : o.tokens) split = split || !valid_utf8(tok.decode({t}, true));
  EXPECT_TRUE(split) << "no multi-byte character was split over tokens: " << o.text;
}

TEST_F(EngineTextTest, StopStringSplitOverTokensIsNeverReleased) {
  Engine e(*model_);
  Request r = chat("Tell me about the city of Paris in three sentences.", 48);
  r.ignore_eos = true;
  const Outcome full = run_one(e, r);
  // A stop string made of the last two characters of one token and the first two of the
  // next (" capital" is one token: spaces count), at the first boundary where all four are
  // plain letters or spaces and they occur there first.
  const Tokenizer& tok = model_->tokenizer();
  std::string stop;
  size_t at = 0;  // where it starts in full.text
  for (size_t i = 0; i + 1 < full.tokens.size() && stop.empty(); ++i) {
    const std::string a = tok.decode({full.tokens[i]}, true), b = tok.decode({full.tokens[i + 1]}, true);
    at += a.size();
    auto letters = [](const std::string& s) {
      return std::all_of(s.begin(), s.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == ' '; });
    };
    if (a.size() < 2 || b.size() < 2 || !letters(a.substr(a.size() - 2)) || !letters(b.substr(0, 2))) continue;
    const std::string cand = a.substr(a.size() - 2) + b.substr(0, 2);
    if (full.text.find(cand) == at - 2) stop = cand, at -= 2;
  }
  ASSERT_FALSE(stop.empty()) << full.text;
  r.stop_strings = {"never appears in it", stop};
  const Outcome cut = run_one(e, r);
  EXPECT_EQ(cut.last.reason, StopReason::kStopString);
  EXPECT_EQ(cut.text, full.text.substr(0, at));
  EXPECT_LT(cut.tokens.size(), full.tokens.size());
}

// The tiny fixture model (no tokenizer: tokens print as "[id]").
std::unique_ptr<Model> tiny() { return test::tiny_engine_model(); }

Request tiny_request(int n) {
  Request r;
  r.prompt = {5, 17, 29, 3, 11, 42, 7, 19, 23};
  r.sampling.temperature = 0;
  r.max_new_tokens = n;
  r.ignore_eos = true;
  return r;
}

TEST(EngineText, StopStringOverTwoTokensOfTheTinyModel) {
  auto m = tiny();
  Engine e(*m);
  const Outcome full = run_one(e, tiny_request(6));
  ASSERT_EQ(full.tokens.size(), 6u);
  Request r = tiny_request(6);
  const std::string stop = "][" + std::to_string(full.tokens[2]);  // the end of one token, the next
  const size_t at = full.text.find(stop);
  ASSERT_NE(at, std::string::npos);
  r.stop_strings = {stop};
  const Outcome cut = run_one(e, r);
  EXPECT_EQ(cut.last.reason, StopReason::kStopString);
  EXPECT_EQ(cut.text, full.text.substr(0, at));
  EXPECT_LE(cut.tokens.size(), 3u);
  EXPECT_EQ(cut.last.generated_tokens, int(cut.tokens.size()));
}

TEST(EngineText, LogprobsAreTheLogSoftmaxOfTheModelsLogits) {
  auto m = tiny();
  Engine e(*m);
  Request r = tiny_request(5);
  r.top_logprobs = 4;
  r.sampling.temperature = 0.7f;  // logprobs are of the raw distribution, whatever the sampling
  r.sampling.seed = 3;
  const int64_t id = e.submit(r);
  std::vector<RequestEvent> got;
  while (!e.idle())
    for (RequestEvent& ev : e.step())
      if (ev.id == id && ev.token >= 0) got.push_back(ev);
  ASSERT_EQ(got.size(), 5u);
  std::vector<int32_t> seq = r.prompt;
  const size_t vocab = size_t(m->config().vocab_size);
  for (const RequestEvent& ev : got) {
    const std::vector<float> all = m->forward(seq);
    const float* l = all.data() + (seq.size() - 1) * vocab;
    const double mx = *std::max_element(l, l + vocab);
    double z = 0;
    for (size_t i = 0; i < vocab; ++i) z += std::exp(l[i] - mx);
    auto lp = [&](int32_t t) { return double(l[t]) - mx - std::log(z); };
    EXPECT_NEAR(ev.logprob, lp(ev.token), 1e-3);
    ASSERT_EQ(ev.top_logprobs.size(), 4u);
    std::vector<int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + 4, order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
    double p_top = 0;
    for (size_t k = 0; k < 4; ++k) {
      EXPECT_EQ(ev.top_logprobs[k].first, order[k]);
      EXPECT_NEAR(ev.top_logprobs[k].second, lp(order[k]), 1e-3);
      p_top += std::exp(ev.top_logprobs[k].second);
    }
    EXPECT_LE(p_top, 1.0 + 1e-4);
    EXPECT_LE(ev.logprob, ev.top_logprobs[0].second + 1e-6);
    seq.push_back(ev.token);
  }
  // Not asked: none.
  const Outcome plain = run_one(e, tiny_request(2));
  EXPECT_EQ(plain.tokens.size(), 2u);
}

TEST(EngineText, UsageAndCountersAddUp) {
  auto m = tiny();
  Engine e(*m);
  const Request r = tiny_request(4);
  const Outcome first = run_one(e, r);
  EXPECT_EQ(first.last.prompt_tokens, 9);
  EXPECT_EQ(first.last.cached_tokens, 0);
  EXPECT_EQ(first.last.generated_tokens, 4);
  // The same prompt again: its two full blocks of 4 tokens are found in the cache.
  const Outcome again = run_one(e, r);
  EXPECT_EQ(again.last.cached_tokens, 8);
  EXPECT_EQ(again.tokens, first.tokens);
  const int64_t a = e.submit(tiny_request(3)), b = e.submit(tiny_request(30));
  EXPECT_EQ(e.stats().waiting, 2);
  e.step();
  EngineStats mid = e.stats();
  EXPECT_EQ(mid.running, 2);
  EXPECT_GT(mid.kv_blocks_used, 0);
  EXPECT_EQ(mid.kv_blocks_used + mid.kv_blocks_free, mid.kv_blocks);
  e.cancel(b);
  const auto rest = run_all(e);
  EXPECT_EQ(rest.at(a).last.reason, StopReason::kLength);
  EXPECT_EQ(rest.at(b).last.reason, StopReason::kCallback);
  const EngineStats s = e.stats();
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_EQ(s.kv_block_size, 4);
  EXPECT_EQ(s.requests_finished, 4);
  EXPECT_EQ(s.prompt_tokens, 4 * 9);
  EXPECT_EQ(s.generated_tokens, 4 + 4 + 3 + rest.at(b).last.generated_tokens);
  EXPECT_GE(s.cached_tokens, 8);
  EXPECT_GT(s.steps, 0);
}

TEST(EngineText, BadTextParametersAreParamErrors) {
  auto m = tiny();
  Engine e(*m);
  Request r = tiny_request(2);
  r.stop_strings = {""};
  EXPECT_THROW(e.submit(r), ParamError);
  r = tiny_request(2);
  r.top_logprobs = Request::kMaxTopLogprobs + 1;
  EXPECT_THROW(e.submit(r), ParamError);
  r = tiny_request(60);  // 9 + 60 > 64
  EXPECT_THROW(e.submit(r), ParamError);
}

}  // namespace
}  // namespace upg
