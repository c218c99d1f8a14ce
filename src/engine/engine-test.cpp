// The engine on the tiny fixture model (so this also runs under the sanitizers): many
// requests at once give, token for token, what each gives alone.
#include "upg/engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/test-paths.h"
#include "engine/test-tiny-model.h"
#include "upg/core/error.h"

namespace upg {
namespace {

std::unique_ptr<Model> tiny(int kv_blocks = 0, int ranks = 1) { return test::tiny_engine_model(kv_blocks, "llama", ranks); }

std::vector<int32_t> prompt_of(int k, int vocab) {
  std::vector<int32_t> p;
  for (int i = 0; i < 9; ++i) p.push_back(int32_t((i * 7919 + 13) % vocab));  // a shared prefix
  for (int i = 0; i <= k % 5; ++i) p.push_back(int32_t((k * 131 + i * 17 + 5) % vocab));
  return p;
}

// Greedy decoding by recomputing the whole sequence every token: no KV cache reuse.
std::vector<int32_t> greedy_alone(Model& m, std::vector<int32_t> toks, int n) {
  const size_t vocab = size_t(m.config().vocab_size);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const std::vector<float> logits = m.forward(toks);
    const float* last = logits.data() + (toks.size() - 1) * vocab;
    const int32_t next = int32_t(std::max_element(last, last + vocab) - last);
    out.push_back(next);
    toks.push_back(next);
  }
  return out;
}

std::map<int64_t, std::vector<int32_t>> run_all(Engine& e, std::map<int64_t, StopReason>* reasons = nullptr) {
  std::map<int64_t, std::vector<int32_t>> out;
  for (int guard = 0; !e.idle() && guard < 10000; ++guard)
    for (const RequestEvent& ev : e.step()) {
      if (ev.token >= 0) out[ev.id].push_back(ev.token);
      if (ev.finished && reasons) (*reasons)[ev.id] = ev.reason;
    }
  EXPECT_TRUE(e.idle());
  return out;
}

Request sampled_request(std::vector<int32_t> prompt, uint64_t seed, int n) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = seed;
  r.max_new_tokens = n;
  r.ignore_eos = true;
  return r;
}

Request greedy_request(std::vector<int32_t> prompt, int n) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.max_new_tokens = n;
  r.ignore_eos = true;  // greedy_alone does not stop either
  return r;
}

// Returns the engine's preemptions.
// ranks: the model under test split over that many tensor-parallel CPU ranks.
int64_t expect_batch_equals_alone(int kv_blocks, SchedulerLimits limits, SpeculativeOptions spec = {},
                                  EngineStats* stats = nullptr, bool draft_model = false, int ranks = 1) {
  auto m = tiny(kv_blocks, ranks), ref = tiny(), draft = tiny(kv_blocks);
  if (draft_model) spec.draft = draft.get();
  const int vocab = m->config().vocab_size;
  Engine e(*m, {limits, true, spec});
  std::map<int64_t, std::vector<int32_t>> want;
  for (int k = 0; k < 8; ++k) {
    const int n = 4 + k % 4;
    const int64_t id = e.submit(greedy_request(prompt_of(k, vocab), n));
    want[id] = greedy_alone(*ref, prompt_of(k, vocab), n);
  }
  std::map<int64_t, StopReason> reasons;
  const auto got = run_all(e, &reasons);
  for (const auto& [id, toks] : want) {
    EXPECT_EQ(got.at(id), toks) << "request " << id;
    EXPECT_EQ(reasons.at(id), StopReason::kLength);
  }
  EXPECT_EQ(e.stats().kv_blocks_free, m->kv_blocks());
  if (stats) *stats = e.stats();
  return e.stats().preemptions;
}

TEST(Engine, GreedyRequestsInOneBatchGiveWhatEachGivesAlone) {
  EXPECT_EQ(expect_batch_equals_alone(0, {512, 32}), 0);
}

// Greedy requests get their pick from the model (Batch::kGreedy), except one that asks for
// log-probabilities, which needs the logits: side by side in one batch, each gives what it
// gives alone, and the one with log-probabilities has them on every token.
TEST(Engine, PickedAndLogitGreedyRequestsSideBySide) {
  auto m = tiny(), ref = tiny();
  const int vocab = m->config().vocab_size;
  Engine e(*m, {{512, 32}, true, {}});
  std::map<int64_t, std::vector<int32_t>> want;
  int64_t with_logprobs = -1;
  for (int k = 0; k < 4; ++k) {
    Request r = greedy_request(prompt_of(k, vocab), 6);
    if (k == 2) r.top_logprobs = 1;
    const int64_t id = e.submit(std::move(r));
    if (k == 2) with_logprobs = id;
    want[id] = greedy_alone(*ref, prompt_of(k, vocab), 6);
  }
  std::map<int64_t, std::vector<int32_t>> got;
  int logprobs = 0;
  for (int guard = 0; !e.idle() && guard < 1000; ++guard)
    for (const RequestEvent& ev : e.step()) {
      if (ev.token < 0) continue;
      got[ev.id].push_back(ev.token);
      if (ev.id == with_logprobs && ev.top_logprobs.size() == 1) ++logprobs;
    }
  EXPECT_EQ(got, want);
  EXPECT_EQ(logprobs, 6);
}

TEST(Engine, SmallBudgetsAndAShortPoolChunkAndPreemptWithoutChangingOutputs) {
  // 10 blocks of 4 tokens for 8 requests of 10-14 prompt tokens: most wait, some are
  // preempted and recomputed; prompts run in chunks of at most 6 tokens per step.
  EXPECT_GT(expect_batch_equals_alone(10, {6, 4}), 0);
}

// The same over a model split over 2 CPU ranks (tensor parallelism): every rank runs the
// engine's batches with their block tables, copy-on-write copies go to every rank's
// cache, and each request gets the tokens one whole model gives it alone.
TEST(Engine, TensorParallelRanksServeBatchesWithChunksAndPreemption) {
  EXPECT_GT(expect_batch_equals_alone(10, {6, 4}, {}, nullptr, false, 2), 0);
  EXPECT_EQ(expect_batch_equals_alone(0, {512, 32}, {}, nullptr, false, 2), 0);
}

TEST(Engine, BatchInvariantOutputsSurviveChunkingAndPreemption) {
  // As above (a pool of 10 blocks of 4 tokens, steps of at most 6): chunked prompts next
  // to decode tokens, preempted sequences recomputed; half the requests sampled. With
  // batch invariance each gives exactly its tokens alone.
  auto m = tiny(10);
  const int vocab = m->config().vocab_size;
  EngineOptions inv;
  inv.batch_invariant = true;
  std::vector<Request> reqs;
  for (int k = 0; k < 8; ++k)
    reqs.push_back(k % 2 ? greedy_request(prompt_of(k, vocab), 4 + k % 4)
                         : sampled_request(prompt_of(k, vocab), uint64_t(77 + k), 4 + k % 4));
  std::vector<std::vector<int32_t>> alone;
  for (const Request& r : reqs) {
    Engine e(*m, inv);
    const int64_t id = e.submit(r);
    alone.push_back(run_all(e).at(id));
  }
  EngineOptions small = inv;
  small.limits = {6, 4};
  Engine e(*m, small);
  std::vector<int64_t> ids;
  for (const Request& r : reqs) ids.push_back(e.submit(r));
  const auto got = run_all(e);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(got.at(ids[i]), alone[i]) << "request " << i;
  EXPECT_GT(e.stats().preemptions, 0);
}

TEST(Engine, PromptLookupDraftsLeaveGreedyOutputsUnchanged) {
  EngineStats st;
  SpeculativeOptions spec;
  spec.lookup = 4;
  spec.ngram_min = 1;  // 1-gram matches: many drafts, some wrong, so rejection runs too
  expect_batch_equals_alone(0, {512, 32}, spec, &st);
  EXPECT_GT(st.drafted_tokens, 0);
  EXPECT_GT(st.accepted_tokens, 0);  // the tiny model repeats itself: some drafts hold
  EXPECT_LT(st.accepted_tokens, st.drafted_tokens);
  // Drafts that do not fit a small budget or a short pool are dropped, never cut.
  expect_batch_equals_alone(10, {6, 4}, spec, &st);
  EXPECT_GT(st.drafted_tokens, 0);
}

TEST(Engine, DraftModelDraftsLeaveGreedyOutputsUnchanged) {
  EngineStats st;
  SpeculativeOptions spec;
  spec.draft_max = 3;
  // The draft is the target itself (another instance): every greedy draft is accepted.
  expect_batch_equals_alone(0, {512, 32}, spec, &st, true);
  EXPECT_GT(st.drafted_tokens, 0);
  EXPECT_EQ(st.accepted_tokens, st.drafted_tokens);
  EXPECT_LT(st.steps, 12);  // 4-7 tokens each: in about two steps of drafts, not one a token
  // A short pool (the draft's as short as the target's) and small budgets: drafts that do
  // not fit are dropped.
  expect_batch_equals_alone(10, {6, 4}, spec, &st, true);
}

TEST(Engine, SampledDraftsKeepTheSeededRequestReproducible) {
  auto m = tiny(), draft = tiny();
  const int vocab = m->config().vocab_size;
  SpeculativeOptions spec;
  spec.draft = draft.get();
  const Request r = sampled_request(prompt_of(2, vocab), 99, 12);
  std::vector<int32_t> first;
  for (int k = 0; k < 2; ++k) {
    Engine e(*m, {{512, 32}, true, spec});
    const int64_t id = e.submit(r);
    const auto out = run_all(e).at(id);
    EXPECT_EQ(out.size(), 12u);
    if (k == 0) first = out;
    else EXPECT_EQ(out, first);
    EXPECT_GT(e.stats().drafted_tokens, 0);
  }
}

TEST(Engine, SeededSamplingDoesNotDependOnTheBatch) {
  auto m = tiny();
  const int vocab = m->config().vocab_size;
  const Request r = sampled_request(prompt_of(3, vocab), 1234, 10);
  std::vector<int32_t> alone;
  {
    Engine e(*m);
    const int64_t id = e.submit(r);
    alone = run_all(e).at(id);
  }
  Engine e(*m);
  for (int k = 0; k < 5; ++k) {
    Request other = r;
    other.prompt = prompt_of(k + 10, vocab);
    other.sampling.seed = uint64_t(k);
    e.submit(other);
  }
  const int64_t id = e.submit(r);
  EXPECT_EQ(run_all(e).at(id), alone);
}

TEST(Engine, CancelMidPrefillAndMidDecodeFreesItsBlocks) {
  auto m = tiny();
  const int vocab = m->config().vocab_size;
  Engine e(*m, {{4, 8}, true, {}});  // 4 tokens a step: a prompt takes several steps
  const int64_t a = e.submit(greedy_request(prompt_of(1, vocab), 20));
  const int64_t b = e.submit(greedy_request(prompt_of(2, vocab), 20));
  e.step();
  e.cancel(a);  // a is mid-prefill
  std::map<int64_t, StopReason> reasons;
  for (int i = 0; i < 6; ++i)
    for (const RequestEvent& ev : e.step())
      if (ev.finished) reasons[ev.id] = ev.reason;
  EXPECT_EQ(reasons.at(a), StopReason::kCallback);
  e.cancel(b);  // b is decoding by now
  for (const RequestEvent& ev : e.step())
    if (ev.finished) reasons[ev.id] = ev.reason;
  EXPECT_EQ(reasons.at(b), StopReason::kCallback);
  EXPECT_TRUE(e.idle());
  EXPECT_EQ(e.stats().kv_blocks_free, m->kv_blocks());
}

TEST(Engine, AMemoryBudgetSizesTheKvPool) {
  ModelOptions o;
  o.context_length = 64;
  o.n_threads = 1;
  o.kv_type = DType::F32;
  o.kv_block_size = 4;
  auto whole = Model::from_file(test::fixture("tiny/llama"), o);
  const int64_t block = int64_t(whole->backend().kv_bytes()) / whole->kv_blocks();
  o.kv_memory_bytes = 7 * block + block / 2;  // room for 7 whole blocks
  auto m = Model::from_file(test::fixture("tiny/llama"), o);
  EXPECT_EQ(m->kv_blocks(), 7);
  EXPECT_EQ(int64_t(m->backend().kv_bytes()), 7 * block);
  Engine e(*m);
  EXPECT_EQ(e.stats().kv_blocks, 7);
  e.submit(greedy_request(prompt_of(0, m->config().vocab_size), 4));
  EXPECT_EQ(run_all(e).begin()->second.size(), 4u);
  o.kv_memory_bytes = block - 1;
  EXPECT_THROW(Model::from_file(test::fixture("tiny/llama"), o), ParamError);
}

TEST(Engine, BadRequestsAreParamErrors) {
  auto m = tiny();
  Engine e(*m);
  EXPECT_THROW(e.submit(Request{}), ParamError);
  EXPECT_THROW(e.submit(greedy_request({m->config().vocab_size}, 1)), ParamError);
  EXPECT_THROW(e.submit(greedy_request(std::vector<int32_t>(64, 1), 1)), ParamError);
  Request bad = greedy_request({1, 2}, 1);
  bad.sampling.temperature = -1;
  bad.sampling.top_p = 2;
  EXPECT_THROW(e.submit(bad), ParamError);
  // A pool of 2 blocks of 4 tokens can never hold a 9-token prompt: refused at submit.
  auto small = tiny(2);
  Engine e2(*small);
  EXPECT_THROW(e2.submit(greedy_request(std::vector<int32_t>(9, 1), 1)), ParamError);
  EXPECT_NO_THROW(e2.submit(greedy_request(std::vector<int32_t>(8, 1), 1)));
}

}  // namespace
}  // namespace upg
