// One request through the engine, as `upg run` and `upg chat` run it, on the default
// model: greedy output equals transformers' continuation, seeds reproduce, stop
// conditions and context limits behave, a chat's earlier turns come from the cache.
#include "upg/engine/generate.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/test-paths.h"
#include "engine/test-default-model.h"
#include "upg/core/error.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

using test::default_model_path;
using test::source_dir;

class GenerateTest : public test::DefaultModelSuite<GenerateTest> {
 public:
  static ModelOptions options() {
    ModelOptions o;
    o.context_length = 160;
    o.load.dequant_to = DType::F32;  // greedy ids are compared with an fp32 reference
    return o;
  }

 protected:
  static Request request(const std::string& prompt, int n, float temperature = 0) {
    const Tokenizer& tok = model_->tokenizer();
    Request r;
    r.prompt = tok.encode(prompt, tok.add_bos(), true);
    r.sampling.temperature = temperature;
    r.max_new_tokens = n;
    return r;
  }
  static std::string run(Engine& e, Request r, GenerateStats* st = nullptr) {
    std::string out;
    GenerateStats s = generate(e, std::move(r), [&](std::string_view t) {
      out += t;
      return true;
    });
    if (st) *st = s;
    return out;
  }
};

TEST_F(GenerateTest, GreedyMatchesTransformersIdsAndStopsAtEndOfTurn) {
  std::ifstream in(source_dir() + "/tests/fixtures/smollm2-golden.json");
  const auto g = nlohmann::json::parse(in);
  const auto& p = g["prompts"][0];  // the chat prompt about France
  Request r;
  r.prompt = p["ids"].get<std::vector<int32_t>>();
  r.sampling.temperature = 0;
  r.max_new_tokens = 64;
  const auto want = p["continuation"]["ids"].get<std::vector<int32_t>>();
  Engine e(*model_);
  const int64_t id = e.submit(r);
  std::vector<int32_t> got;
  StopReason reason = StopReason::kNone;
  while (!e.idle())
    for (const RequestEvent& ev : e.step()) {
      ASSERT_EQ(ev.id, id);
      if (ev.token >= 0) got.push_back(ev.token);
      if (ev.finished) reason = ev.reason;
    }
  // The reference ran past <|im_end|>; the engine stops there, so compare up to it.
  ASSERT_EQ(reason, StopReason::kEos);
  ASSERT_LT(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << i;
  EXPECT_EQ(want[got.size()], model_->tokenizer().token_id("<|im_end|>"));
}

TEST_F(GenerateTest, StreamedTextEqualsDecodedIdsAndStatsCount) {
  Engine e(*model_);
  Request r = request("Emoji and accents: café 👍🏽 日本", 40);
  r.ignore_eos = true;
  GenerateStats st;
  const std::string text = run(e, r, &st);
  EXPECT_EQ(st.stop_reason, StopReason::kLength);
  EXPECT_EQ(st.generated_tokens, 40);
  EXPECT_EQ(st.prompt_tokens, int(r.prompt.size()));
  EXPECT_EQ(st.prefilled_tokens, st.prompt_tokens);
  EXPECT_GT(st.prompt_seconds, 0);
  EXPECT_GT(st.decode_seconds, 0);
  EXPECT_FALSE(text.empty());
}

TEST_F(GenerateTest, SameSeedSameTextDifferentSeedsDiffer) {
  Engine e(*model_);
  Request r = request("Once upon a time", 24, 1.0f);
  r.ignore_eos = true;
  r.sampling.seed = 7;
  const std::string a = run(e, r);
  const std::string b = run(e, r);
  EXPECT_EQ(a, b);
  std::set<std::string> outs;
  for (uint64_t seed : {1, 2, 3, 4}) {
    r.sampling.seed = seed;
    outs.insert(run(e, r));
  }
  EXPECT_GT(outs.size(), 1u);
}

TEST_F(GenerateTest, AChatsEarlierTurnsComeFromTheCacheWithTheSameResult) {
  const std::string prompt = model_->tokenizer().apply_chat_template({{"user", "Name three colors."}});
  Engine fresh(*model_);
  const std::string want = run(fresh, request(prompt, 20));
  Engine reused(*model_);
  run(reused, request(prompt + "Red", 5));  // shares all but the tail with `prompt`
  GenerateStats st;
  const std::string got = run(reused, request(prompt, 20), &st);
  EXPECT_EQ(got, want);
  // Only the tokens after the last full block of 16 are computed again.
  EXPECT_LE(st.prefilled_tokens, model_->kv_block_size());
  EXPECT_GE(st.prefilled_tokens, 1);
}

TEST_F(GenerateTest, StopStringEndsGenerationAndIsNotShown) {
  Engine e(*model_);
  const std::string prompt = model_->tokenizer().apply_chat_template({{"user", "What is the capital of France?"}});
  const std::string full = run(e, request(prompt, 40));
  ASSERT_NE(full.find("Paris"), std::string::npos) << full;
  Request r = request(prompt, 40);
  r.stop_strings = {"Paris"};
  GenerateStats st;
  const std::string cut = run(e, r, &st);
  EXPECT_EQ(st.stop_reason, StopReason::kStopString);
  EXPECT_EQ(cut, full.substr(0, full.find("Paris")));
}

TEST_F(GenerateTest, ACallbackThatSaysStopCancels) {
  Engine e(*model_);
  Request r = request("Count from one to fifty:", 60);
  r.ignore_eos = true;
  int calls = 0;
  const GenerateStats st = generate(e, r, [&](std::string_view) { return ++calls < 3; });
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(st.stop_reason, StopReason::kCallback);
  EXPECT_LT(st.generated_tokens, 60);
  EXPECT_TRUE(e.idle());
}

TEST_F(GenerateTest, PromptsThatDoNotFitAreErrors) {
  Engine e(*model_);
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "word ";
  EXPECT_THROW(run(e, request(long_prompt, 8)), ParamError);
  EXPECT_THROW(run(e, request("Hello", 200)), ParamError);  // prompt + n > 160
  EXPECT_THROW(run(e, Request{}), ParamError);
  Request r = request("Count:", -1);  // until the context is full
  r.ignore_eos = true;
  GenerateStats st;
  run(e, r, &st);
  EXPECT_EQ(st.stop_reason, StopReason::kContextFull);
  EXPECT_EQ(st.prompt_tokens + st.generated_tokens, model_->context_length());
  EXPECT_TRUE(e.idle());
}

// On the tiny fixture model, so it also runs under the sanitizers: a token limit near
// INT_MAX overflowed `prompt + limit` (UB; in practice it wrapped negative and the check
// passed, generating until the context was full).
TEST(Generate, TokenLimitNearIntMaxIsAnError) {
  ModelOptions o;
  o.context_length = 32;
  o.n_threads = 1;
  auto m = Model::from_file(test::fixture("tiny/llama"), o);
  Engine e(*m);
  Request r;
  r.prompt = {1, 2, 3};
  r.max_new_tokens = INT_MAX;
  try {
    generate(e, r, [](std::string_view) { return true; });
    FAIL() << "no error";
  } catch (const ParamError& err) {
    EXPECT_EQ(err.param(), "max_new_tokens");
    EXPECT_NE(std::string(err.what()).find("exceeds the context of 32 tokens"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace upg
