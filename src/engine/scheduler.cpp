#include "engine/scheduler.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

Scheduler::Scheduler(KvManager& kv, SchedulerLimits limits, bool share_generated)
    : kv_(kv), limits_(limits), share_generated_(share_generated) {
  if (limits.max_step_tokens < 1)
    throw ParamError("max_step_tokens", fmt::format("must be 1 or more, got {}", limits.max_step_tokens));
  if (limits.max_running < 1)
    throw ParamError("max_running", fmt::format("must be 1 or more, got {}", limits.max_running));
}

const Scheduler::Seq& Scheduler::get(int32_t seq) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) throw Error(fmt::format("scheduler: no sequence {}", seq));
  return it->second;
}

Scheduler::Seq& Scheduler::get(int32_t seq) { return const_cast<Seq&>(std::as_const(*this).get(seq)); }

const std::vector<int32_t>& Scheduler::tokens(int32_t seq) const { return get(seq).tokens; }

void Scheduler::check_fits(std::span<const int32_t> prompt) const {
  if (prompt.empty()) throw ParamError("prompt", "is empty");
  const int64_t B = kv_.block_size(), need = (int64_t(prompt.size()) + B - 1) / B;
  if (need > kv_.n_blocks())
    throw ParamError("prompt", fmt::format("{} tokens need {} KV cache blocks of {} tokens; the pool has {}",
                                           prompt.size(), need, B, kv_.n_blocks()));
}

void Scheduler::add(int32_t seq, std::vector<int32_t> prompt) {
  if (seqs_.count(seq)) throw Error(fmt::format("scheduler: sequence {} already exists", seq));
  check_fits(prompt);
  const int n = int(prompt.size());
  seqs_.emplace(seq, Seq{std::move(prompt), 0, -1, 0, n});
  waiting_.push_back(seq);
}

void Scheduler::append_token(int32_t seq, int32_t token) {
  Seq& s = get(seq);
  if (s.computed != int(s.tokens.size()))
    throw Error(fmt::format("scheduler: sequence {} gets a token before its last one ran", seq));
  s.tokens.push_back(token);
}

bool Scheduler::decoding(int32_t seq) const {
  const Seq& s = get(seq);
  return s.drafts == 0 && s.computed > 0 && s.computed + 1 == int(s.tokens.size()) && kv_.has(seq);
}

void Scheduler::add_drafts(int32_t seq, std::span<const int32_t> drafts) {
  if (!decoding(seq)) throw Error(fmt::format("scheduler: sequence {} is not decoding: no drafts", seq));
  Seq& s = get(seq);
  s.tokens.insert(s.tokens.end(), drafts.begin(), drafts.end());
  s.drafts = int(drafts.size());
}

void Scheduler::drop_drafts(Seq& s) {
  s.tokens.resize(s.tokens.size() - size_t(s.drafts));
  s.drafts = 0;
}

void Scheduler::truncate(int32_t seq, int n_tokens) {
  Seq& s = get(seq);
  if (n_tokens < 0 || n_tokens > int(s.tokens.size()))
    throw Error(fmt::format("scheduler: sequence {} has {} tokens, not {}", seq, s.tokens.size(), n_tokens));
  s.tokens.resize(size_t(n_tokens));
  s.drafts = 0;
  if (s.computed > n_tokens) {
    s.computed = n_tokens;
    if (kv_.has(seq)) kv_.truncate(seq, n_tokens);
  }
}

void Scheduler::finish(int32_t seq) {
  get(seq);
  if (kv_.has(seq)) kv_.free(seq);
  running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), seq), waiting_.end());
  seqs_.erase(seq);
}

void Scheduler::commit(const StepPlan& plan) {
  for (const ScheduledSeq& c : plan.seqs)
    if (kv_.has(c.seq)) kv_.commit(c.seq, share_generated_ ? SIZE_MAX : size_t(get(c.seq).prompt));
}

bool Scheduler::try_run(int32_t seq, int budget, StepPlan& plan) {
  Seq& s = get(seq);
  int n = std::min(budget, int(s.tokens.size()) - s.computed);
  // Drafts run whole or not at all: a cut one would leave nothing to verify them with.
  if (s.drafts > 0 && (n < int(s.tokens.size()) - s.computed || !kv_.can_append(seq, n))) {
    drop_drafts(s);
    n = std::min(budget, int(s.tokens.size()) - s.computed);
  }
  if (n <= 0) return true;  // nothing new (its sampled token has not come back yet)
  if (!kv_.can_append(seq, n)) return false;
  const std::span<const int32_t> chunk(s.tokens.data() + s.computed, size_t(n));
  kv_.append(seq, chunk, plan.slots, plan.copies);
  plan.seqs.push_back({seq, s.computed, n, s.computed + n == int(s.tokens.size()), s.drafts});
  s.computed += n;
  return true;
}

void Scheduler::preempt(int32_t seq, StepPlan& plan) {
  Seq& s = get(seq);
  kv_.free(seq);
  drop_drafts(s);
  s.computed = 0;
  running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
  waiting_.push_front(seq);
  plan.preempted.push_back(seq);
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = limits_.max_step_tokens;
  // Running sequences, oldest first; the newest gives way when the pool is short.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    const int32_t seq = running_[i];
    const int before = plan.n_tokens();
    if (try_run(seq, budget, plan)) {
      budget -= plan.n_tokens() - before;
      ++i;
      continue;
    }
    // Preempting a sequence already scheduled this step would free blocks its slots
    // use, so only those after i give way; with none left, seq itself waits.
    preempt(running_.back(), plan);
  }
  // Waiting sequences, first come first served: the first that does not fit stops the
  // queue (a later, smaller one does not jump it).
  while (!waiting_.empty() && budget > 0 && int(running_.size()) < limits_.max_running) {
    const int32_t seq = waiting_.front();
    Seq& s = get(seq);
    s.computed = kv_.start(seq, s.tokens);
    const int before = plan.n_tokens();
    if (!try_run(seq, budget, plan)) {
      kv_.free(seq);
      s.computed = 0;
      if (running_.empty() && plan.seqs.empty())
        throw Error(fmt::format("scheduler: sequence {} ({} tokens) does not fit the free KV cache blocks even alone",
                                seq, s.tokens.size()));
      break;
    }
    budget -= plan.n_tokens() - before;
    if (s.cached < 0) s.cached = plan.seqs.back().first;
    waiting_.pop_front();
    running_.push_back(seq);
  }
  return plan;
}

}  // namespace upg
