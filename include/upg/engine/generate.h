#pragma once
// One request through an Engine with its text streamed to a callback, and the timings a
// command line prints: what `upg run` and `upg chat` do. It is the engine's one code path
// (a server or `upg batch` runs many requests through the same step()).
#include <functional>
#include <string_view>

#include "upg/engine/engine.h"

namespace upg {

struct GenerateStats {
  int prompt_tokens = 0;      // tokens in the prompt
  int prefilled_tokens = 0;   // of which were actually computed (the rest were found in the KV cache)
  int generated_tokens = 0;
  double prompt_seconds = 0;  // submit to the first token: prefill and the first sample
  double decode_seconds = 0;  // time for every generated token after the first
  StopReason stop_reason = StopReason::kNone;
  int64_t forward_passes = 0;   // engine steps that ran it
  int64_t drafted_tokens = 0;   // speculative decoding: proposed
  int64_t accepted_tokens = 0;  // of which kept
  double tokens_per_forward() const { return forward_passes > 0 ? double(generated_tokens) / forward_passes : 0; }
  double prompt_tok_per_s() const { return prompt_seconds > 0 ? prefilled_tokens / prompt_seconds : 0; }
  double decode_tok_per_s() const {
    return decode_seconds > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_seconds : 0;
  }
};

// Called with each printable piece of text (RequestEvent::text: never half a UTF-8
// character, never part of a stop string); return false to stop (the request is
// cancelled: StopReason::kCallback).
using TextCallback = std::function<bool(std::string_view text)>;

// Submits r to e and steps e until r has finished. Meant for an engine that runs nothing
// else: other requests' events are dropped. Throws what Engine::submit throws for a bad
// request. A chat keeps one engine between turns: the previous turns' full KV blocks are
// found by prefix sharing (EngineOptions::prefix_sharing), so only the new turn is
// prefilled.
GenerateStats generate(Engine& e, Request r, const TextCallback& on_text);

}  // namespace upg
