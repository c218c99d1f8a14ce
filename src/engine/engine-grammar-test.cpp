// Requests with a grammar through the engine on the default model: every output, with
// and without speculative (prompt-lookup) drafts and several requests in one batch, is
// accepted whole by a fresh matcher of the same grammar; a request cut by max_new_tokens
// ends with kLength and a valid prefix; a bad grammar is a ParamError at submit.
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "engine/test-default-model.h"
#include "upg/core/error.h"
#include "upg/engine/engine.h"

namespace upg {
namespace {

constexpr const char* kSchema =
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},"n":{"type":"integer","minimum":0,"maximum":99},)"
    R"("tags":{"type":"array","items":{"enum":["red","green","blue"]},"maxItems":3}},"required":["name","n","tags"]})";

class EngineGrammarTest : public test::DefaultModelSuite<EngineGrammarTest> {
 public:
  static ModelOptions options() {
    ModelOptions o;
    o.context_length = 256;
    o.max_sequences = 4;
    return o;
  }

 protected:
  static Request request(uint64_t seed, int n) {
    const Tokenizer& tok = model_->tokenizer();
    Request r;
    r.prompt = tok.encode("<|im_start|>user\nA JSON record of a colourful thing, twice the same.<|im_end|>\n"
                          "<|im_start|>assistant\n",
                          false, true);
    r.sampling.temperature = 1.0f;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0.0f;
    r.sampling.seed = seed;
    r.max_new_tokens = n;
    r.grammar = GrammarSpec{GrammarKind::kJsonSchema, kSchema};
    return r;
  }
  struct Out {
    std::vector<int32_t> tokens;
    StopReason reason = StopReason::kNone;
  };
  static std::map<int64_t, Out> run_all(Engine& e, std::vector<Request> rs) {
    std::map<int64_t, Out> out;
    for (auto& r : rs) out[e.submit(std::move(r))];
    for (size_t done = 0; done < out.size();)
      for (const RequestEvent& ev : e.step()) {
        if (ev.finished) {
          out[ev.id].reason = ev.reason;
          ++done;
        } else {
          out[ev.id].tokens.push_back(ev.token);
        }
      }
    return out;
  }
  // Whether a fresh matcher accepts `tokens` (and, when `whole`, then a stop token).
  static bool matches(const std::vector<int32_t>& tokens, bool whole) {
    static GrammarCompiler c(model_->tokenizer(), {.vocab_size = model_->config().vocab_size,
                                                   .stop_tokens = default_stop_tokens(*model_)});
    GrammarMatcher m(c.compile({GrammarKind::kJsonSchema, kSchema}));
    for (int32_t t : tokens)
      if (!m.accept(t)) return false;
    return !whole || m.accept(default_stop_tokens(*model_).front());
  }
};

TEST_F(EngineGrammarTest, OutputsFollowTheGrammarWithAndWithoutDrafts) {
  for (int lookup : {0, 3}) {
    EngineOptions o;
    o.speculative.lookup = lookup;
    o.speculative.ngram_min = 1;  // drafts often, so some are rejected
    Engine e(*model_, o);
    std::vector<Request> rs;
    for (uint64_t seed = 1; seed <= 4; ++seed) rs.push_back(request(seed, 120));
    for (const auto& [id, out] : run_all(e, std::move(rs))) {
      EXPECT_EQ(out.reason, StopReason::kEos) << "lookup " << lookup << ", request " << id;
      EXPECT_TRUE(matches(out.tokens, true)) << "lookup " << lookup << ", request " << id;
    }
    if (lookup > 0) {
      EXPECT_GT(e.stats().drafted_tokens, 0);
    }
  }
}

TEST_F(EngineGrammarTest, MaxTokensEndsWithLengthAndAValidPrefix) {
  Engine e(*model_, {});
  std::vector<Request> rs;
  rs.push_back(request(7, 5));
  const auto out = run_all(e, std::move(rs));
  ASSERT_EQ(out.size(), 1u);
  const Out& o = out.begin()->second;
  EXPECT_EQ(o.reason, StopReason::kLength);
  EXPECT_EQ(o.tokens.size(), 5u);
  EXPECT_TRUE(matches(o.tokens, false));
  EXPECT_FALSE(matches(o.tokens, true));
}

TEST_F(EngineGrammarTest, BadGrammarIsAParamErrorAtSubmit) {
  Engine e(*model_, {});
  Request r = request(1, 10);
  r.grammar = GrammarSpec{GrammarKind::kJsonSchema, R"({"type":"array","uniqueItems":true})"};
  try {
    e.submit(std::move(r));
    FAIL() << "no error";
  } catch (const ParamError& err) {
    EXPECT_EQ(err.param(), "json_schema");
  }
}

}  // namespace
}  // namespace upg
