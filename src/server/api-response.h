#pragma once
// The OpenAI response bodies: whole responses, streamed chunks (server-sent events),
// the model list. Plain functions of plain data, so each shape is unit-tested without a
// model or a socket.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api-request.h"
#include "server/tool-calls.h"
#include "upg/engine/request.h"

namespace upg::server {

// One generated token's log-probability and, when asked, the most likely alternatives.
// Token text is the token's raw bytes (may be part of a UTF-8 character: JSON output
// replaces what is invalid, and `bytes` carries the exact bytes, as OpenAI does).
struct TokenLogprob {
  std::string token;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;
};

// How a choice ended. kNone: it has not. aborted: the server ended it (its timeout, or
// shutdown past the grace period), which a client sees as finish_reason "abort" (vLLM's
// name for it), as it does a cancelled request.
std::optional<std::string> finish_reason(StopReason reason);

struct Choice {
  int index = 0;
  std::string text;
  StopReason reason = StopReason::kNone;
  std::vector<TokenLogprob> logprobs;  // empty unless asked
  int64_t text_offset = 0;  // completions' text_offset of the first token here (a stream's bytes so far)
  // Chat with tools: the calls here (a stream's chunk: the ones completed in it, the
  // first of them the choice's call number tool_call_base), and whether the choice has
  // called any (its finish reason is then "tool_calls" where the model ended its turn).
  std::vector<ToolCall> tool_calls;
  int tool_call_base = 0;
  bool called_tools = false;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// What every response and chunk of one request repeats.
struct ResponseHead {
  Endpoint endpoint = Endpoint::kChat;
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
  bool logprobs = false;  // the request asked for them: the field is an object, else null
};

std::string make_response_id(Endpoint e, uint64_t serial);

nlohmann::json completion_response(const ResponseHead& h, const std::vector<Choice>& choices, const Usage& usage);

// One streamed chunk of one choice: `first` adds the assistant role (chat); a chunk
// with a finish reason carries it; logprobs are those of the tokens whose text it holds.
// include_usage adds "usage": null, as OpenAI does on every chunk but the last.
nlohmann::json stream_chunk(const ResponseHead& h, const Choice& delta, bool first, bool include_usage);
// The last chunk of a stream with include_usage: no choices, the usage.
nlohmann::json usage_chunk(const ResponseHead& h, const Usage& usage);

nlohmann::json model_list(const std::string& model, int64_t created);

// "data: <json>\n\n"; text that is not valid UTF-8 is replaced (U+FFFD) rather than
// failing the response.
std::string sse_event(const nlohmann::json& j);
std::string sse_done();
// JSON text of a body, with the same replacement.
std::string dump_json(const nlohmann::json& j);

}  // namespace upg::server
