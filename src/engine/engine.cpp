#include "upg/engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/kv-manager.h"
#include "engine/logprobs.h"
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
  Live(Request r, const Model& model)
      : req(std::move(r)), sampler(req.sampling), stops(req.stop_strings) {
    if (req.stop_tokens.empty() && !req.ignore_eos) req.stop_tokens = default_stop_tokens(model);
    if (model.has_tokenizer()) decoder.emplace(model.tokenizer(), true);
  }
  Request req;
  Sampler sampler;  // built from req.sampling, which it validates
  StopStringFilter stops;
  std::optional<StreamDecoder> decoder;  // none without a tokenizer: tokens print as "[id]"
  int generated = 0;
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
      : model(m), kv(m.kv_blocks(), m.kv_block_size(), o.prefix_sharing), sched(kv, o.limits) {
    counted.kv_blocks = kv.n_blocks();
    counted.kv_block_size = kv.block_size();
    counted.kv_blocks_free = kv.free_blocks();
    stats = counted;
  }

  void take_queued(std::vector<RequestEvent>& events);
  // Ends request id: flushes its held-back text (unless a stop string ended it) into a
  // finished event with its usage.
  void end(int64_t id, StopReason reason, std::vector<RequestEvent>& events);
  // Takes the token sampled for id from `logits`: an event, and the end when it stops the
  // request. Returns whether the request goes on.
  bool emit(int64_t id, Live& live, int32_t token, std::span<const float> logits, std::vector<RequestEvent>& events);
  void publish_stats();

  Model& model;
  KvManager kv;
  Scheduler sched;
  std::unordered_map<int64_t, std::unique_ptr<Live>> live;
  Batch batch;
  std::vector<int32_t> order_scratch;  // token_logprobs
  EngineStats counted;  // the totals, kept on the step thread; published under mu

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

int64_t Engine::submit(Request r) {
  Impl& I = *impl_;
  I.sched.check_fits(r.prompt);  // empty, or past the KV pool; reads only the pool's fixed size
  check_request(r, I.model);
  auto live = std::make_unique<Live>(std::move(r), I.model);  // its Sampler checks the sampling parameters
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
  ++counted.requests_finished;
  sched.finish(int32_t(id));
  live.erase(id);
  events.push_back(std::move(ev));
}

bool Engine::Impl::emit(int64_t id, Live& l, int32_t token, std::span<const float> logits,
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
  const int64_t n_tokens = int64_t(sched.tokens(int32_t(id)).size()) + 1;
  if (l.stops.stopped()) {
    end(id, StopReason::kStopString, events);
  } else if (l.req.max_new_tokens >= 0 && l.generated >= l.req.max_new_tokens) {
    end(id, StopReason::kLength, events);
  } else if (n_tokens >= model.context_length()) {
    end(id, StopReason::kContextFull, events);
  } else {
    sched.append_token(int32_t(id), token);
    return true;
  }
  return false;
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
  const StepPlan plan = I.sched.schedule();
  I.counted.preemptions += int64_t(plan.preempted.size());
  if (!plan.seqs.empty()) {
    I.model.copy_kv_blocks(plan.copies);
    I.batch.clear();
    for (const ScheduledSeq& c : plan.seqs) {
      const std::vector<int32_t>& toks = I.sched.tokens(c.seq);
      const int32_t table = I.batch.add_table(I.kv.block_table(c.seq));
      for (int i = 0; i < c.count; ++i) {
        const int pos = c.first + i;
        I.batch.add(toks[size_t(pos)], pos, c.seq, c.wants_logits && i + 1 == c.count, table);
      }
    }
    const std::span<const float> logits = I.model.decode(I.batch);
    I.sched.commit(plan);
    ++I.counted.steps;

    const size_t vocab = size_t(I.model.config().vocab_size);
    size_t row = 0;
    for (const ScheduledSeq& c : plan.seqs) {
      if (!c.wants_logits) continue;
      Live& l = *I.live.at(c.seq);
      const std::span<const float> row_logits = logits.subspan(row++ * vocab, vocab);
      const int32_t next = l.sampler.sample(row_logits, I.sched.tokens(c.seq));
      I.emit(c.seq, l, next, row_logits, events);
    }
  }
  I.publish_stats();
  return events;
}

}  // namespace upg
