#include "upg/engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/draft-model.h"
#include "engine/kv-manager.h"
#include "engine/logprobs.h"
#include "engine/prompt-lookup.h"
#include "engine/scheduler.h"
#include "engine/stop-strings.h"
#include "upg/core/error.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {

std::vector<int32_t> default_stop_tokens(const Model& model) {
  std::vector<int32_t> ids;
  if (model.has_tokenizer()) ids = model.tokenizer().stop_ids();
  for (int id : model.config().eos_token_ids)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return ids;
}

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kNone: return "none";
    case StopReason::kEos: return "eos";
    case StopReason::kStopString: return "stop string";
    case StopReason::kLength: return "length";
    case StopReason::kContextFull: return "context full";
    case StopReason::kCallback: return "callback";
  }
  return "unknown";
}

namespace {

// A request inside the engine: its sampler and the state that turns its tokens into text.
struct Live {
  Live(Request r, const Model& model, std::shared_ptr<const CompiledGrammar> grammar)
      : req(std::move(r)), sampler(req.sampling), stops(req.stop_strings) {
    if (req.stop_tokens.empty() && (!req.ignore_eos || grammar)) req.stop_tokens = default_stop_tokens(model);
    if (model.has_tokenizer()) decoder.emplace(model.tokenizer(), true);
    if (grammar) {
      matcher.emplace(std::move(grammar), req.stop_tokens);
      mask.assign(size_t(matcher->mask_words()), 0);
    }
  }
  // Its next token is the logits' argmax, which the model can pick where the logits are
  // (Batch::kGreedy): greedy, nothing before the pick, no grammar, no log-probabilities.
  bool greedy_on_model() const { return sampler.plain_greedy() && !matcher && req.top_logprobs < 0; }
  // The grammar's mask for the next token (empty without a grammar).
  std::span<const uint32_t> next_mask() {
    if (!matcher) return {};
    matcher->fill_mask(mask);
    return mask;
  }
  // Advances the grammar on a decided token (the sampler drew it from the mask).
  void advance(int32_t token) {
    if (matcher && !matcher->accept(token))
      throw Error(fmt::format("engine: the grammar refused token {} that its mask allowed", token));
  }
  // With a draft model: what draws its drafts (the request's settings, another stream).
  Sampler& draft_sampler() {
    if (!drafter) {
      SamplingParams p = req.sampling;
      if (p.seed != SamplingParams{}.seed) p.seed ^= 0x9E3779B97F4A7C15ull;
      drafter.emplace(p);
    }
    return *drafter;
  }
  Request req;
  Sampler sampler;  // built from req.sampling, which it validates
  StopStringFilter stops;
  std::optional<StreamDecoder> decoder;  // none without a tokenizer: tokens print as "[id]"
  int generated = 0;
  std::optional<Sampler> drafter;
  std::vector<int32_t> drafts;            // this step's, from the draft model
  std::vector<CandidateList> draft_dists;  // the distribution each was drawn from
  // With Request::grammar: where the output is in it. It advances only on decided tokens
  // (drafts as they are verified), so a rejected draft never reaches it.
  std::optional<GrammarMatcher> matcher;
  std::vector<uint32_t> mask;
};

void check_request(const Request& r, const Model& model) {
  const int vocab = model.config().vocab_size;
  for (int32_t t : r.prompt)
    if (t < 0 || t >= vocab) throw ParamError("prompt", fmt::format("token id {} is outside the vocabulary of {}", t, vocab));
  const int64_t ctx = model.context_length();
  if (int64_t(r.prompt.size()) >= ctx)
    throw ParamError("prompt", fmt::format("{} tokens do not fit the context of {} tokens", r.prompt.size(), ctx));
  // In 64 bits: a token limit near INT_MAX ("as many as fit") must not wrap.
  if (r.max_new_tokens >= 0 && int64_t(r.prompt.size()) + r.max_new_tokens > ctx)
    throw ParamError("max_new_tokens", fmt::format("prompt ({} tokens) plus {} new tokens exceeds the context of {} tokens",
                                                   r.prompt.size(), r.max_new_tokens, ctx));
  for (const std::string& s : r.stop_strings)
    if (s.empty()) throw ParamError("stop_strings", "an empty stop string would end every request at once");
  if (r.top_logprobs < -1 || r.top_logprobs > Request::kMaxTopLogprobs)
    throw ParamError("top_logprobs", fmt::format("must be -1 (none) to {}, got {}", Request::kMaxTopLogprobs, r.top_logprobs));
}

}  // namespace

struct Engine::Impl {
  Impl(Model& m, EngineOptions o)
      : model(m), kv(m.kv_blocks(), m.kv_block_size(), o.prefix_sharing), sched(kv, o.limits, !o.batch_invariant),
        batch_invariant(o.batch_invariant) {
    if (batch_invariant && !m.backend().batch_invariant())
      throw ParamError("batch_invariant", fmt::format("the backend ({}) cannot keep a token's numbers independent of its batch",
                                                      m.backend().name()));
    lookup.max_draft = o.speculative.lookup;
    lookup.ngram_max = o.speculative.ngram_max;
    lookup.ngram_min = o.speculative.ngram_min;
    check_lookup_params(lookup);
    if (o.speculative.draft) draft_model = std::make_unique<DraftModel>(*o.speculative.draft, m, o.speculative.draft_max);
    one_draft.items.assign(1, Candidate{0, 0, 1});
    one_draft.normalized = true;
    counted.kv_blocks = kv.n_blocks();
    counted.kv_block_size = kv.block_size();
    counted.kv_blocks_free = kv.free_blocks();
    stats = counted;
  }

  void take_queued(std::vector<RequestEvent>& events);
  // Ends request id: flushes its held-back text (unless a stop string ended it) into a
  // finished event with its usage.
  void end(int64_t id, StopReason reason, std::vector<RequestEvent>& events);
  // Reports `token`, which makes id's sequence n_after tokens long, sampled from
  // `logits`: an event, and the end when it stops the request. Returns whether the
  // request goes on (the caller then appends the token where it is not there yet).
  bool emit(int64_t id, Live& live, int32_t token, int64_t n_after, std::span<const float> logits,
            std::vector<RequestEvent>& events);
  // Gives every decoding request its drafts for this step (prompt lookup or the draft model).
  void propose();
  // The tokens chunk c's logits rows decide: for a plain chunk the one sampled, for one
  // with drafts the accepted drafts and the target's own next token (the rejected
  // drafts are truncated out of the sequence and its blocks).
  void decide(const ScheduledSeq& c, std::span<const float> rows, std::vector<int32_t>& out);
  void publish_stats();
  // The grammar compiler for the model's vocabulary, built on first use (thread-safe).
  GrammarCompiler& grammars() {
    std::call_once(grammars_once, [&] {
      if (!model.has_tokenizer()) throw ParamError("grammar", "the model has no tokenizer to compile a grammar for");
      GrammarCompilerOptions o;
      o.vocab_size = model.config().vocab_size;
      o.stop_tokens = default_stop_tokens(model);
      grammar_compiler = std::make_unique<GrammarCompiler>(model.tokenizer(), o);
    });
    return *grammar_compiler;
  }

  Model& model;
  KvManager kv;
  Scheduler sched;
  bool batch_invariant;  // EngineOptions::batch_invariant: the batch carries token classes
  std::unordered_map<int64_t, std::unique_ptr<Live>> live;
  Batch batch;
  std::vector<int32_t> order_scratch;  // token_logprobs
  LookupParams lookup;                 // max_draft 0: no prompt lookup
  std::unique_ptr<DraftModel> draft_model;  // when set, it proposes instead
  std::vector<DraftModel::Job> draft_jobs;
  std::vector<int32_t> draft;          // propose()'s scratch
  CandidateList one_draft;             // a deterministic draft for verify_draft: one token, p = 1
  struct Decided {
    const ScheduledSeq* chunk;
    size_t row;                   // its first logits row (none: picked on the model)
    bool picked = false;          // its token came from Model::greedy
    std::vector<int32_t> tokens;  // to report, in order
  };
  std::vector<Decided> decided;
  EngineStats counted;  // the totals, kept on the step thread; published under mu
  std::once_flag grammars_once;
  std::unique_ptr<GrammarCompiler> grammar_compiler;

  mutable std::mutex mu;  // guards the queues and `stats` below
  std::condition_variable work;
  int64_t next_id = 0;
  std::vector<std::pair<int64_t, std::unique_ptr<Live>>> submitted;
  std::vector<int64_t> cancelled;
  bool has_live = false;  // live is not empty, as of the last step
  EngineStats stats;
};

Engine::Engine(Model& model, EngineOptions options) : impl_(std::make_unique<Impl>(model, options)) {}

Engine::~Engine() = default;

const Model& Engine::model() const { return impl_->model; }

void Engine::prepare_grammar(const GrammarSpec& spec) { (void)impl_->grammars().compile(spec); }

int64_t Engine::submit(Request r) {
  Impl& I = *impl_;
  I.sched.check_fits(r.prompt);  // empty, or past the KV pool; reads only the pool's fixed size
  check_request(r, I.model);
  std::shared_ptr<const CompiledGrammar> grammar;
  if (r.grammar) grammar = I.grammars().compile(*r.grammar);  // cached; outside the step thread
  auto live = std::make_unique<Live>(std::move(r), I.model, std::move(grammar));  // its Sampler checks the sampling parameters
  {
    std::lock_guard lock(I.mu);
    if (I.next_id == std::numeric_limits<int32_t>::max()) throw Error("engine: request ids exhausted");
    const int64_t id = I.next_id++;
    I.submitted.emplace_back(id, std::move(live));
    I.work.notify_all();
    return id;
  }
}

void Engine::cancel(int64_t id) {
  Impl& I = *impl_;
  std::lock_guard lock(I.mu);
  I.cancelled.push_back(id);
  I.work.notify_all();
}

bool Engine::idle() const {
  std::lock_guard lock(impl_->mu);
  return impl_->live.empty() && impl_->submitted.empty();
}

bool Engine::wait_for_work(std::chrono::milliseconds timeout) {
  Impl& I = *impl_;
  std::unique_lock lock(I.mu);
  return I.work.wait_for(lock, timeout, [&] { return I.has_live || !I.submitted.empty() || !I.cancelled.empty(); });
}

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->mu);
  EngineStats s = impl_->stats;
  s.waiting += int(impl_->submitted.size());
  return s;
}

void Engine::Impl::publish_stats() {
  std::lock_guard lock(mu);
  stats = counted;
  stats.running = sched.n_running();
  stats.waiting = sched.n_waiting();
  stats.kv_blocks_free = kv.free_blocks();
  stats.kv_blocks_used = kv.n_blocks() - kv.free_blocks();
  has_live = !live.empty();
}

void Engine::Impl::end(int64_t id, StopReason reason, std::vector<RequestEvent>& events) {
  Live& l = *live.at(id);
  RequestEvent ev;
  ev.id = id;
  ev.finished = true;
  if (reason != StopReason::kStopString) {
    ev.text = l.stops.push(l.decoder ? l.decoder->flush() : std::string());
    if (l.stops.stopped()) reason = StopReason::kStopString;  // the flushed bytes completed one
    else ev.text += l.stops.flush();
  }
  ev.reason = reason;
  ev.prompt_tokens = int(l.req.prompt.size());
  ev.cached_tokens = sched.has(int32_t(id)) ? sched.cached_tokens(int32_t(id)) : 0;
  ev.generated_tokens = l.generated;
  counted.cached_tokens += ev.cached_tokens;
  if (draft_model) draft_model->free(int32_t(id));
  ++counted.requests_finished;
  sched.finish(int32_t(id));
  live.erase(id);
  events.push_back(std::move(ev));
}

bool Engine::Impl::emit(int64_t id, Live& l, int32_t token, int64_t n_after, std::span<const float> logits,
                        std::vector<RequestEvent>& events) {
  const auto& stop_tokens = l.req.stop_tokens;
  if (std::find(stop_tokens.begin(), stop_tokens.end(), token) != stop_tokens.end()) {
    end(id, StopReason::kEos, events);
    return false;
  }
  ++l.generated;
  ++counted.generated_tokens;
  RequestEvent ev;
  ev.id = id;
  ev.token = token;
  ev.text = l.stops.push(l.decoder ? l.decoder->push(token) : fmt::format("[{}]", token));
  if (l.req.top_logprobs >= 0) ev.logprob = token_logprobs(logits, token, l.req.top_logprobs, ev.top_logprobs, order_scratch);
  events.push_back(std::move(ev));
  if (l.stops.stopped()) {
    end(id, StopReason::kStopString, events);
  } else if (l.req.max_new_tokens >= 0 && l.generated >= l.req.max_new_tokens) {
    end(id, StopReason::kLength, events);
  } else if (n_after >= model.context_length()) {
    end(id, StopReason::kContextFull, events);
  } else {
    return true;
  }
  return false;
}

void Engine::Impl::propose() {
  draft_jobs.clear();
  for (int32_t seq : sched.running()) {
    if (!sched.decoding(seq)) continue;
    Live& l = *live.at(seq);
    const std::vector<int32_t>& toks = sched.tokens(seq);
    // Room for the drafts and the target's own token after them: in the context, and in
    // the request's token limit (a draft past it would be computed for nothing).
    int room = int(model.context_length() - int64_t(toks.size())) - 1;
    if (l.req.max_new_tokens >= 0) room = std::min(room, l.req.max_new_tokens - l.generated - 1);
    if (room <= 0) continue;
    if (draft_model) {
      draft_jobs.push_back({seq, toks, room, &l.draft_sampler(), &l.drafts, &l.draft_dists});
      continue;
    }
    propose_lookup(toks, lookup, draft);
    if (int(draft.size()) > room) draft.resize(size_t(room));
    if (!draft.empty()) sched.add_drafts(seq, draft);
  }
  if (draft_jobs.empty()) return;
  draft_model->propose(draft_jobs);
  for (const DraftModel::Job& j : draft_jobs)
    if (!j.tokens->empty()) sched.add_drafts(j.seq, *j.tokens);
}

void Engine::Impl::decide(const ScheduledSeq& c, std::span<const float> rows, std::vector<int32_t>& out) {
  Live& l = *live.at(c.seq);
  const size_t vocab = size_t(model.config().vocab_size);
  const std::vector<int32_t>& toks = sched.tokens(c.seq);
  const size_t first_draft = toks.size() - size_t(c.drafts);  // the drafts' place in toks
  out.clear();
  int accepted = 0;
  bool rejected = false;
  for (int i = 0; i < c.drafts && !rejected; ++i) {
    // The target's distribution under the grammar: a draft it forbids has p = 0 there, so
    // it is rejected and the replacement comes from what the grammar allows.
    const CandidateList& target = l.sampler.distribution(
        rows.subspan(size_t(i) * vocab, vocab), std::span(toks).first(first_draft + size_t(i)), l.next_mask());
    const int32_t drafted = toks[first_draft + size_t(i)];
    one_draft.items[0].id = drafted;
    const DraftVerdict v =
        l.sampler.verify_draft(target, draft_model ? l.draft_dists[size_t(i)] : one_draft, drafted);
    l.advance(v.token);
    out.push_back(v.token);  // the draft, or the target's correction in its place
    if (v.accepted) ++accepted;
    else rejected = true;
  }
  if (c.drafts > 0) {
    counted.drafted_tokens += c.drafts;
    counted.accepted_tokens += accepted;
    sched.truncate(c.seq, int(first_draft) + accepted);
    if (rejected) return;
  }
  // Every draft accepted (or none): the target's own next token after them.
  const size_t row = out.size();
  const std::vector<int32_t>& now = sched.tokens(c.seq);
  const int32_t token = l.sampler.sample(rows.subspan(row * vocab, vocab), now, l.next_mask());
  l.advance(token);
  out.push_back(token);
}

void Engine::Impl::take_queued(std::vector<RequestEvent>& events) {
  std::vector<std::pair<int64_t, std::unique_ptr<Live>>> fresh;
  std::vector<int64_t> gone;
  {
    std::lock_guard lock(mu);
    fresh.swap(submitted);
    gone.swap(cancelled);
  }
  for (auto& [id, l] : fresh) {
    sched.add(int32_t(id), l->req.prompt);
    counted.prompt_tokens += int64_t(l->req.prompt.size());
    live.emplace(id, std::move(l));
  }
  for (int64_t id : gone)
    if (live.count(id)) end(id, StopReason::kCallback, events);
}

std::vector<RequestEvent> Engine::step() {
  Impl& I = *impl_;
  std::vector<RequestEvent> events;
  I.take_queued(events);
  if (I.lookup.max_draft > 0 || I.draft_model) I.propose();
  const StepPlan plan = I.sched.schedule();
  I.counted.preemptions += int64_t(plan.preempted.size());
  if (!plan.seqs.empty()) {
    I.model.copy_kv_blocks(plan.copies);
    I.batch.clear();
    for (const ScheduledSeq& c : plan.seqs) {
      const std::vector<int32_t>& toks = I.sched.tokens(c.seq);
      const int32_t table = I.batch.add_table(I.kv.block_table(c.seq));
      const int prompt = I.sched.prompt_length(c.seq);
      const bool pick = c.wants_logits && c.drafts == 0 && I.live.at(c.seq)->greedy_on_model();
      for (int i = 0; i < c.count; ++i) {
        const int pos = c.first + i;
        // Logits after the last token, and after each token a draft follows.
        I.batch.add(toks[size_t(pos)], pos, c.seq, c.wants_logits && i >= c.count - 1 - c.drafts, table);
        if (pick && i == c.count - 1) I.batch.want_logits.back() = Batch::kGreedy;
        // A generated token recomputed after preemption keeps its class.
        if (I.batch_invariant) I.batch.prompt.push_back(pos < prompt ? 1 : 0);
      }
    }
    const std::span<const float> logits = I.model.decode(I.batch);
    const std::span<const int32_t> picks = I.model.greedy();
    ++I.counted.steps;

    // Decide every request's tokens (truncating rejected drafts), then commit the full
    // blocks (so a request that ends now leaves its prefix findable), then report.
    const size_t vocab = size_t(I.model.config().vocab_size);
    I.decided.resize(plan.seqs.size());
    size_t row = 0, n_decided = 0, n_picks = 0;
    for (const ScheduledSeq& c : plan.seqs) {
      if (!c.wants_logits) continue;
      Impl::Decided& d = I.decided[n_decided++];
      d.chunk = &c;
      d.row = row;
      d.picked = c.drafts == 0 && I.live.at(c.seq)->greedy_on_model();
      if (d.picked) {  // the batch asked the model for its pick (kGreedy) above
        d.tokens.assign(1, picks[n_picks++]);
        continue;
      }
      const size_t n_rows = size_t(c.drafts) + 1;
      I.decide(c, logits.subspan(row * vocab, n_rows * vocab), d.tokens);
      row += n_rows;
    }
    I.sched.commit(plan);
    for (size_t k = 0; k < n_decided; ++k) {
      const Impl::Decided& d = I.decided[k];
      const int32_t seq = d.chunk->seq;
      Live& l = *I.live.at(seq);
      // The accepted drafts are in the sequence already; the last token is new.
      const int64_t base = int64_t(I.sched.tokens(seq).size()) - int64_t(d.tokens.size()) + 1;
      bool goes_on = true;
      for (size_t j = 0; j < d.tokens.size() && goes_on; ++j)
        goes_on = I.emit(seq, l, d.tokens[j], base + int64_t(j) + 1,
                         d.picked ? std::span<const float>() : logits.subspan((d.row + j) * vocab, vocab), events);
      if (goes_on) I.sched.append_token(seq, d.tokens.back());
    }
  }
  I.publish_stats();
  return events;
}

}  // namespace upg
