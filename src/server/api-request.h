#pragma once
// The OpenAI request bodies of /v1/chat/completions and /v1/completions, parsed and
// checked: every field's type and range, unknown fields refused (a misspelt
// "max_token" would otherwise be silently ignored), each problem an ApiError naming the
// field. What the engine checks itself (sampling parameters, a prompt past the context)
// is checked again at submit, whose ParamErrors field_for_param() names.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api-error.h"
#include "server/tool-calls.h"
#include "upg/grammar/grammar.h"
#include "upg/sampling/sampling.h"

namespace upg::server {

enum class Endpoint { kChat, kCompletions };

// One prompt of /v1/completions: text to tokenize, or token ids as given.
struct PromptInput {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;                 // empty: the one served
  // chat: an array of {role, content: string (parts joined) or null, and name,
  // tool_calls (arguments as objects), tool_call_id where given}
  nlohmann::ordered_json messages;
  ToolRequest tools;                 // chat: tools, tool_choice, parallel_tool_calls
  // Structured output: response_format (json_object, json_schema) or llama.cpp's
  // `grammar` (GBNF) and `json_schema` fields; grammar_field names the field it came
  // from, for the errors its compilation may raise at submit. grammar_field is also set
  // for response_format {"type": "text"}, which asks for no grammar: the body chose its
  // output format (upg batch's --json-schema and --json then leave it alone).
  std::optional<GrammarSpec> grammar;
  std::string grammar_field;
  std::vector<PromptInput> prompts;  // completions: one choice group per prompt
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  int max_tokens = -1;               // -1: until the context is full
  SamplingParams sampling;           // OpenAI's defaults (temperature 1, top_p 1, no top-k/min-p)
  bool seeded = false;               // a seed was given: choice i uses seed + i
  std::vector<std::string> stop;
  int n = 1;
  int logprobs = -1;                 // -1: none; k >= 0: the sampled token's plus the k most likely
  bool ignore_eos = false;
  std::string user;
};

struct RequestLimits {
  int context_length = 2048;  // max_tokens above it is refused: it could never be reached
  int max_n = 16;
  int max_stop = 16;
  int max_top_logprobs = 20;
  int vocab_size = 0;         // token prompts are checked against it (0: not checked here)
};

// Parses a body; throws ApiError (400) for every problem.
ApiRequest parse_request(std::string_view body, Endpoint endpoint, const RequestLimits& limits);
// The same from a parsed body (upg batch reads JSON lines).
ApiRequest parse_request_body(const nlohmann::ordered_json& body, Endpoint endpoint, const RequestLimits& limits);

// The request field a library ParamError's parameter stands for ("repeat_penalty" ->
// "repetition_penalty", "prompt" -> "messages" on chat), as the CLI maps them to flags.
std::string field_for_param(const std::string& param, Endpoint endpoint);

}  // namespace upg::server
