#include "engine/engine.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

Engine::Engine(Model& model, EngineOptions options)
    : model_(model),
      kv_(model.kv_blocks(), model.kv_block_size(), options.prefix_sharing),
      sched_(kv_, options.limits) {}

Engine::~Engine() = default;

int64_t Engine::submit(Request r) {
  sched_.check_fits(r.prompt);  // empty, or past the KV pool; reads only the pool's fixed size
  const int vocab = model_.config().vocab_size;
  for (int32_t t : r.prompt)
    if (t < 0 || t >= vocab) throw ParamError("prompt", fmt::format("token id {} is outside the vocabulary of {}", t, vocab));
  if (int64_t(r.prompt.size()) >= model_.context_length())
    throw ParamError("prompt", fmt::format("{} tokens do not fit the context of {} tokens", r.prompt.size(),
                                           model_.context_length()));
  auto live = std::make_unique<Live>(std::move(r));  // its Sampler checks the sampling parameters
  std::lock_guard lock(mu_);
  if (next_id_ == std::numeric_limits<int32_t>::max()) throw Error("engine: request ids exhausted");
  const int64_t id = next_id_++;
  submitted_.emplace_back(id, std::move(live));
  return id;
}

void Engine::cancel(int64_t id) {
  std::lock_guard lock(mu_);
  cancelled_.push_back(id);
}

bool Engine::idle() const {
  std::lock_guard lock(mu_);
  return live_.empty() && submitted_.empty();
}

void Engine::end(int64_t id, StopReason reason, std::vector<RequestEvent>& events) {
  sched_.finish(int32_t(id));
  live_.erase(id);
  events.push_back({id, -1, true, reason});
}

void Engine::take_queued(std::vector<RequestEvent>& events) {
  std::vector<std::pair<int64_t, std::unique_ptr<Live>>> submitted;
  std::vector<int64_t> cancelled;
  {
    std::lock_guard lock(mu_);
    submitted.swap(submitted_);
    cancelled.swap(cancelled_);
  }
  for (auto& [id, live] : submitted) {
    sched_.add(int32_t(id), live->req.prompt);
    live_.emplace(id, std::move(live));
  }
  for (int64_t id : cancelled)
    if (live_.count(id)) end(id, StopReason::kCallback, events);
}

std::vector<RequestEvent> Engine::step() {
  std::vector<RequestEvent> events;
  take_queued(events);
  const StepPlan plan = sched_.schedule();
  preemptions_ += int64_t(plan.preempted.size());
  if (plan.seqs.empty()) return events;
  model_.copy_kv_blocks(plan.copies);
  batch_.clear();
  for (const ScheduledSeq& c : plan.seqs) {
    const std::vector<int32_t>& toks = sched_.tokens(c.seq);
    const int32_t table = batch_.add_table(kv_.block_table(c.seq));
    for (int i = 0; i < c.count; ++i) {
      const int pos = c.first + i;
      batch_.add(toks[size_t(pos)], pos, c.seq, c.wants_logits && i + 1 == c.count, table);
    }
  }
  const std::span<const float> logits = model_.decode(batch_);
  sched_.commit(plan);

  const size_t vocab = size_t(model_.config().vocab_size);
  size_t row = 0;
  for (const ScheduledSeq& c : plan.seqs) {
    if (!c.wants_logits) continue;
    const int64_t id = c.seq;
    Live& live = *live_.at(id);
    const std::vector<int32_t>& toks = sched_.tokens(c.seq);
    const int32_t next = live.sampler.sample(logits.subspan(row++ * vocab, vocab), toks);
    const auto& stops = live.req.stop_tokens;
    if (std::find(stops.begin(), stops.end(), next) != stops.end()) {
      end(id, StopReason::kEos, events);
      continue;
    }
    ++live.generated;
    events.push_back({id, next, false, StopReason::kNone});
    if (live.req.max_new_tokens >= 0 && live.generated >= live.req.max_new_tokens) {
      end(id, StopReason::kLength, events);
    } else if (int64_t(toks.size()) + 1 >= model_.context_length()) {
      end(id, StopReason::kContextFull, events);
    } else {
      sched_.append_token(c.seq, next);
    }
  }
  return events;
}

}  // namespace upg
