#include "server/api-response.h"

#include <cmath>

#include <fmt/format.h>

namespace upg::server {

namespace {

using nlohmann::json;

// JSON has no -infinity; a token the distribution excludes gets vLLM's floor instead.
double finite_logprob(float lp) { return std::isfinite(lp) ? double(lp) : -9999.0; }

json byte_list(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(int(c));
  return out;
}

json chat_logprobs(const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const TokenLogprob& t : lps) {
    json top = json::array();
    for (const auto& [tok, lp] : t.top)
      top.push_back({{"token", tok}, {"logprob", finite_logprob(lp)}, {"bytes", byte_list(tok)}});
    content.push_back(
        {{"token", t.token}, {"logprob", finite_logprob(t.logprob)}, {"bytes", byte_list(t.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

json completion_logprobs(const std::vector<TokenLogprob>& lps, int64_t offset) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  for (const TokenLogprob& t : lps) {
    tokens.push_back(t.token);
    token_lps.push_back(finite_logprob(t.logprob));
    json top = json::object();
    for (const auto& [tok, lp] : t.top) top[tok] = finite_logprob(lp);
    tops.push_back(top);
    offsets.push_back(offset);
    offset += int64_t(t.token.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json logprobs_field(const ResponseHead& h, const Choice& c) {
  if (!h.logprobs) return nullptr;
  return h.endpoint == Endpoint::kChat ? chat_logprobs(c.logprobs) : completion_logprobs(c.logprobs, c.text_offset);
}

json reason_field(const Choice& c) {
  auto f = finish_reason(c.reason);
  if (f && *f == "stop" && c.called_tools) return "tool_calls";
  return f ? json(*f) : json(nullptr);
}

// OpenAI's tool_calls entries; a stream's deltas carry their index among the choice's calls.
json tool_calls_json(const Choice& c, bool with_index) {
  json out = json::array();
  for (size_t i = 0; i < c.tool_calls.size(); ++i) {
    const ToolCall& t = c.tool_calls[i];
    json e = {{"id", t.id}, {"type", "function"}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}};
    if (with_index) e["index"] = c.tool_call_base + int(i);
    out.push_back(std::move(e));
  }
  return out;
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

}  // namespace

std::optional<std::string> finish_reason(StopReason reason) {
  switch (reason) {
    case StopReason::kNone:
      return std::nullopt;
    case StopReason::kEos:
    case StopReason::kStopString:
      return "stop";
    case StopReason::kLength:
    case StopReason::kContextFull:
      return "length";
    case StopReason::kCallback:
      return "abort";
  }
  return std::nullopt;
}

std::string make_response_id(Endpoint e, uint64_t serial) {
  return fmt::format("{}-{:016x}", e == Endpoint::kChat ? "chatcmpl" : "cmpl", serial);
}

json completion_response(const ResponseHead& h, const std::vector<Choice>& choices, const Usage& usage) {
  json cs = json::array();
  for (const Choice& c : choices) {
    json choice = {{"index", c.index}, {"logprobs", logprobs_field(h, c)}, {"finish_reason", reason_field(c)}};
    if (h.endpoint == Endpoint::kChat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
      if (!c.tool_calls.empty()) {
        // Text beside the calls is kept; a reply that is only calls has null content.
        if (c.text.find_first_not_of(" \n\r\t") == std::string::npos) choice["message"]["content"] = nullptr;
        choice["message"]["tool_calls"] = tool_calls_json(c, false);
      }
    } else {
      choice["text"] = c.text;
    }
    cs.push_back(std::move(choice));
  }
  return {{"id", h.id},
          {"object", h.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion"},
          {"created", h.created},
          {"model", h.model},
          {"choices", cs},
          {"usage", usage_json(usage)}};
}

json stream_chunk(const ResponseHead& h, const Choice& delta, bool first, bool include_usage) {
  json choice = {{"index", delta.index}, {"logprobs", logprobs_field(h, delta)}, {"finish_reason", reason_field(delta)}};
  if (h.endpoint == Endpoint::kChat) {
    json d = json::object();
    if (first) d["role"] = "assistant";
    if (first || !delta.text.empty()) d["content"] = delta.text;
    if (!delta.tool_calls.empty()) d["tool_calls"] = tool_calls_json(delta, true);
    choice["delta"] = d;
  } else {
    choice["text"] = delta.text;
  }
  json chunk = {{"id", h.id},
                {"object", h.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
                {"created", h.created},
                {"model", h.model},
                {"choices", json::array({choice})}};
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json usage_chunk(const ResponseHead& h, const Usage& usage) {
  return {{"id", h.id},
          {"object", h.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", h.created},
          {"model", h.model},
          {"choices", json::array()},
          {"usage", usage_json(usage)}};
}

json model_list(const std::string& model, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "upg"}}})}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace upg::server
