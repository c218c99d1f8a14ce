#pragma once
// The engine's plain data: what a caller submits (Request), what each step gives back per
// request (RequestEvent), how the engine is set up (EngineOptions) and what it reports
// for monitoring (EngineStats). A front end (the CLI, the HTTP server, `upg batch`) sees
// only these and upg/engine/engine.h.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "upg/grammar/grammar.h"
#include "upg/sampling/sampling.h"

namespace upg {

class Model;

// Why a request ended. A front end names it its own way (the CLI prints stop_reason_name,
// an OpenAI server maps it to finish_reason).
enum class StopReason { kNone, kEos, kStopString, kLength, kContextFull, kCallback };
const char* stop_reason_name(StopReason r);  // "eos", "stop string", "length", ...

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;  // with its own seed: its tokens do not depend on the others
  int max_new_tokens = 256;  // < 0: until the context is full
  // Text that ends the request when the output contains it (not itself released; the
  // text before it is). Held back while a partial match is pending.
  std::vector<std::string> stop_strings;
  // Tokens that end the request (not emitted). Empty: the model's end-of-sequence ids
  // (default_stop_tokens in upg/engine/engine.h), unless ignore_eos.
  std::vector<int32_t> stop_tokens;
  bool ignore_eos = false;  // with empty stop_tokens: no stop token at all
  // Log-probabilities per generated token: -1 none; 0 the sampled token's; k: plus the k
  // most likely tokens (at most kMaxTopLogprobs).
  int top_logprobs = -1;
  static constexpr int kMaxTopLogprobs = 20;
  // Structured output: every token is drawn from those the grammar allows (a mask before
  // the sampler's other steps), and the request ends (StopReason::kEos) once the grammar
  // is complete and the model picks a stop token, the only tokens then allowed. A
  // request cut short by max_new_tokens ends with kLength and a valid prefix. Compiled at
  // submit (cached per engine); a bad or unsupported grammar throws ParamError there.
  // With a grammar, ignore_eos does not apply: the grammar's end is the output's end.
  std::optional<GrammarSpec> grammar;
};

// One generated token of a request, or its end. A request's events come in order; the
// last one has finished set, token -1 and the usage counts.
struct RequestEvent {
  int64_t id = 0;
  int32_t token = -1;
  // The printable text this event releases: never half a UTF-8 character, never any
  // part of a stop string. Often empty on a token event (held back); the finished event
  // carries what was held back (unless a stop string ended the request).
  std::string text;
  // With Request::top_logprobs >= 0, on token events: the log-probability of `token` and
  // the most likely tokens with theirs, most likely first. They are the model's raw
  // distribution (log-softmax of the logits, before penalties, temperature and
  // truncation), as OpenAI's API and vLLM's default report them, so they do not depend
  // on the sampling settings.
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top_logprobs;
  bool finished = false;
  StopReason reason = StopReason::kNone;
  // On the finished event: usage. cached_tokens of the prompt were found in the KV
  // cache (prefix sharing) and not computed.
  int prompt_tokens = 0;
  int cached_tokens = 0;
  int generated_tokens = 0;
};

// Continuous batching limits: what one step (one forward pass) may hold.
struct SchedulerLimits {
  int max_step_tokens = 512;  // tokens of all sequences in one forward pass
  int max_running = 32;       // sequences in one forward pass
};

// Speculative decoding as lookahead slots: each step, a decoding request's proposer gives
// up to a few draft tokens, the step runs them after its last token in the same forward
// pass, and the target's logits after each decide how many to keep (Sampler::verify_draft:
// the output follows the target's distribution; at temperature 0 it is exactly what plain
// decoding gives) plus one token of its own.
struct SpeculativeOptions {
  // Prompt lookup: up to `lookup` draft tokens from the most recent earlier match of the
  // context's last ngram_max .. ngram_min tokens. 0: off. Shorter matches draft more
  // often and are wrong more often: each draft row costs a forward pass's worth of logits,
  // so on chat prompts 1-grams made decoding slower (docs/BENCHMARKS.md).
  int lookup = 0;
  int ngram_max = 3;
  int ngram_min = 3;
  // A draft model (same vocabulary, its own KV pool; it must outlive the engine): up to
  // draft_max tokens drawn from it per step. Used instead of prompt lookup when set.
  Model* draft = nullptr;
  int draft_max = 4;
};

struct EngineOptions {
  SchedulerLimits limits;
  bool prefix_sharing = true;  // full KV blocks of identical prefixes found by hash and shared
  SpeculativeOptions speculative;
  // Every request gives the same tokens (with the same seed) whatever else is in the
  // batch: a token runs through the decode kernels if generated and the prefill ones if
  // of the prompt, whatever the step's size (Backend::set_decode_rows), and only prompt
  // blocks are shared. Costs throughput where many sequences decode at once (the GEMM is
  // faster from 16 tokens on): docs/BENCHMARKS.md. Needs a backend that keeps it
  // (Backend::batch_invariant): the CPU's.
  bool batch_invariant = false;
};

// Counters for monitoring (a server's /metrics); Engine::stats() reads them thread-safely.
// The gauges are as of the end of the last step; the totals count since the start.
struct EngineStats {
  int running = 0;  // requests in the batch
  int waiting = 0;  // submitted, not yet running (including preempted ones)
  int kv_blocks = 0;       // the pool
  int kv_block_size = 0;   // tokens per block
  int kv_blocks_used = 0;  // held by requests
  int kv_blocks_free = 0;  // not held (cached prefixes count as free: they are reused)
  int64_t requests_finished = 0;
  int64_t prompt_tokens = 0;     // of submitted requests
  int64_t cached_tokens = 0;     // prompt tokens found in the KV cache, not computed
  int64_t generated_tokens = 0;  // emitted
  int64_t steps = 0;             // forward passes
  int64_t preemptions = 0;       // sequences freed to be recomputed: the pool was short
  int64_t drafted_tokens = 0;    // speculative decoding: proposed
  int64_t accepted_tokens = 0;   // of which the target model kept
};

}  // namespace upg
