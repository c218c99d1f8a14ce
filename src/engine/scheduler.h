#pragma once
// Continuous batching, as plain data: every step, which tokens of which sequences run.
// vLLM's v1 scheduler is the model: one token budget per step; the running sequences
// first, in arrival order (a decode token each, or the next chunk of an unfinished
// prompt); then waiting prompts, first come first served, in chunks so that a long
// prompt never stalls the others. When the KV pool cannot hold a running sequence's next
// tokens, the newest running sequence is preempted: its blocks are freed and it waits
// again at the front, to be recomputed (its committed prefix blocks usually survive in
// the pool's cache, so recomputing is often cheap). The scheduler never touches a
// tensor: the plan says which tokens, which cache slots and which block copies, and the
// caller runs them through the model.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/kv-manager.h"
#include "upg/core/block-copy.h"
#include "upg/engine/request.h"  // SchedulerLimits

namespace upg {

// One sequence's share of a step: its tokens [first, first + count).
struct ScheduledSeq {
  int32_t seq = 0;
  int first = 0;
  int count = 0;
  bool wants_logits = false;  // the chunk ends the sequence's known tokens: sample after it
  // Speculative decoding: the chunk's last `drafts` tokens are proposals, and the step
  // wants logits after each of the chunk's last drafts + 1 tokens to verify them.
  int drafts = 0;
};

struct StepPlan {
  std::vector<ScheduledSeq> seqs;  // the chunks, each one's slots consecutive in `slots`
  std::vector<int64_t> slots;      // per token of the step, its KV cache slot
  std::vector<BlockCopy> copies;   // copy-on-write: perform before the forward pass
  std::vector<int32_t> preempted;  // sequences sent back to waiting this step
  int n_tokens() const { return int(slots.size()); }
};

class Scheduler {
 public:
  // Throws ParamError for limits below 1. share_generated false: only blocks of prompt
  // tokens are offered for prefix sharing (batch invariance: a block of generated tokens
  // was computed by the decode kernels, and a later prompt holding the same tokens would
  // have computed them by the prefill ones).
  Scheduler(KvManager& kv, SchedulerLimits limits, bool share_generated = true);

  // A new sequence (an id not in use) with its prompt; it waits until schedule() admits
  // it. Throws ParamError("prompt", ...) when the prompt alone needs more blocks than the
  // whole pool: such a request could never run.
  void add(int32_t seq, std::vector<int32_t> prompt);
  // add()'s check alone: throws that ParamError when the prompt could never fit the pool.
  // Reads only the pool's fixed size, so any thread may call it.
  void check_fits(std::span<const int32_t> prompt) const;
  // The token sampled for seq after a step that wanted its logits: it runs next step.
  void append_token(int32_t seq, int32_t token);
  // A running sequence whose next step is one decode token (its sampled token came back):
  // it may take draft tokens.
  bool decoding(int32_t seq) const;
  // Appends proposed tokens after a decoding sequence's last one: lookahead slots, in the
  // step's token budget with it. When the budget or the pool cannot hold them all the
  // drafts are dropped and the sequence runs its one token as usual.
  void add_drafts(int32_t seq, std::span<const int32_t> drafts);
  // Keeps seq's first n_tokens (the accepted prefix of its drafts), in the KV cache too.
  void truncate(int32_t seq, int n_tokens);
  const std::vector<int32_t>& running() const { return running_; }
  // Finished or cancelled, whether running or waiting: its blocks go back to the pool.
  void finish(int32_t seq);
  // The plan's forward pass has run: its tokens' keys and values are in the cache.
  void commit(const StepPlan& plan);

  // Decides the next step. Empty when nothing waits or runs. Throws upg::Error when a
  // waiting sequence cannot be admitted although nothing runs (it cannot fit even alone).
  StepPlan schedule();

  const std::vector<int32_t>& tokens(int32_t seq) const;
  // How many of seq's leading tokens are its prompt (the rest it generated).
  int prompt_length(int32_t seq) const { return get(seq).prompt; }
  // Prompt tokens found in the KV cache when seq was first admitted (0 before).
  int cached_tokens(int32_t seq) const { return std::max(0, get(seq).cached); }
  bool has(int32_t seq) const { return seqs_.count(seq) != 0; }
  int n_running() const { return int(running_.size()); }
  int n_waiting() const { return int(waiting_.size()); }

 private:
  struct Seq {
    std::vector<int32_t> tokens;  // prompt and generated tokens
    int computed = 0;             // leading tokens whose keys and values are (being) cached
    int cached = -1;              // computed by start() at the first admission; -1 before
    int drafts = 0;               // trailing tokens that are proposals (add_drafts)
    int prompt = 0;               // leading tokens that are the prompt
  };

  const Seq& get(int32_t seq) const;
  Seq& get(int32_t seq);
  // Schedules up to `budget` of seq's uncomputed tokens; false when the pool is too short.
  bool try_run(int32_t seq, int budget, StepPlan& plan);
  void preempt(int32_t seq, StepPlan& plan);
  void drop_drafts(Seq& s);

  KvManager& kv_;
  SchedulerLimits limits_;
  bool share_generated_;
  std::unordered_map<int32_t, Seq> seqs_;
  std::vector<int32_t> running_;  // admission order
  std::deque<int32_t> waiting_;   // arrival order; preempted ones go to the front
};

}  // namespace upg
