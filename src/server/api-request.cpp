#include "server/api-request.h"

#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "server/request-fields.h"
#include "upg/core/error.h"
#include "upg/core/json.h"

namespace upg::server {

namespace {

// Ordered: a JSON Schema's properties come out in the order they were given.
using json = nlohmann::ordered_json;

const std::set<std::string, std::less<>>& known_fields(Endpoint e) {
  // Fields of the OpenAI API (and top_k, min_p, repetition_penalty, ignore_eos as vLLM and
  // llama.cpp take them). Ones with no effect here are accepted when they ask for nothing
  // (checked below); anything else is an unknown field.
  static const std::set<std::string, std::less<>> chat = {
      "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
      "top_p", "frequency_penalty", "presence_penalty", "stop", "seed", "n", "logprobs", "top_logprobs",
      "user", "top_k", "min_p", "repetition_penalty", "ignore_eos", "logit_bias", "response_format",
      "tools", "tool_choice", "parallel_tool_calls", "store", "metadata", "service_tier", "grammar", "json_schema"};
  static const std::set<std::string, std::less<>> completions = {
      "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p",
      "frequency_penalty", "presence_penalty", "stop", "seed", "n", "logprobs", "user", "top_k", "min_p",
      "repetition_penalty", "ignore_eos", "logit_bias", "echo", "best_of", "suffix", "grammar", "json_schema"};
  return e == Endpoint::kChat ? chat : completions;
}

int64_t int_field(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) throw bad_field(name, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    throw bad_field(name, fmt::format("must be at most {}", hi));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) throw bad_field(name, fmt::format("{} is outside [{}, {}]", x, lo, hi));
  return x;
}

float number_field(const json& v, const std::string& name, double lo, double hi) {
  if (!v.is_number()) throw bad_field(name, "must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) throw bad_field(name, fmt::format("{} is outside [{}, {}]", x, lo, hi));
  return float(x);
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts (joined).
std::string message_content(const json& c, const std::string& where) {
  if (c.is_string()) return c.get<std::string>();
  if (c.is_null()) return {};
  if (!c.is_array()) throw bad_field(where, "must be a string or an array of text parts");
  std::string text;
  for (const json& part : c) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string())
      throw bad_field(where, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

json parse_messages(const json& v) {
  if (!v.is_array()) throw bad_field("messages", "must be an array of messages");
  if (v.empty()) throw bad_field("messages", "must not be empty");
  static const std::set<std::string, std::less<>> roles = {"system", "developer", "user", "assistant", "tool"};
  json out = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string where = fmt::format("messages[{}]", i);
    const json& m = v[i];
    if (!m.is_object()) throw bad_field(where, "must be an object with role and content");
    if (!m.contains("role") || !m["role"].is_string()) throw bad_field(where + ".role", "must be a string");
    const std::string role = m["role"].get<std::string>();
    if (!roles.count(role)) throw bad_field(where + ".role", fmt::format("unknown role '{}'", role));
    // Other fields (refusal, annotations, audio: what a client echoes back from a
    // response) are left out, as before.
    json msg = {{"role", role}};
    // An assistant message that calls tools may have no content (OpenAI sends null).
    const bool calls = role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (!m.contains("content") && !calls) throw bad_field(where + ".content", "is missing");
    const json content = m.value("content", json());
    msg["content"] = calls && content.is_null() ? json() : json(message_content(content, where + ".content"));
    if (m.contains("name")) msg["name"] = string_field(m["name"], where + ".name");
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (role != "assistant") throw bad_field(where + ".tool_calls", "only assistant messages carry tool calls");
      msg["tool_calls"] = parse_message_tool_calls(m["tool_calls"], where + ".tool_calls");
    }
    if (role == "tool") {
      if (!m.contains("tool_call_id")) throw bad_field(where + ".tool_call_id", "is missing (the call this answers)");
      msg["tool_call_id"] = string_field(m["tool_call_id"], where + ".tool_call_id");
    } else if (m.contains("tool_call_id")) {
      throw bad_field(where + ".tool_call_id", "only tool messages answer a tool call");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

std::vector<int32_t> token_list(const json& v, const std::string& where, int vocab) {
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const json& t : v) {
    const int64_t hi = vocab > 0 ? vocab - 1 : std::numeric_limits<int32_t>::max();
    ids.push_back(int32_t(int_field(t, where, 0, hi)));
  }
  if (ids.empty()) throw bad_field(where, "a token list must not be empty");
  return ids;
}

std::vector<PromptInput> parse_prompts(const json& v, int vocab) {
  std::vector<PromptInput> out;
  if (v.is_string()) {
    out.push_back({v.get<std::string>(), {}, false});
    return out;
  }
  if (!v.is_array() || v.empty())
    throw bad_field("prompt", "must be a string, an array of strings, or token ids (a non-empty array)");
  if (v[0].is_number()) {
    out.push_back({{}, token_list(v, "prompt", vocab), true});
    return out;
  }
  for (const json& p : v) {
    if (p.is_string())
      out.push_back({p.get<std::string>(), {}, false});
    else if (p.is_array())
      out.push_back({{}, token_list(p, "prompt", vocab), true});
    else
      throw bad_field("prompt", "an array of prompts holds strings or arrays of token ids");
  }
  return out;
}

std::vector<std::string> parse_stop(const json& v, int max_stop) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const json& s : v) out.push_back(string_field(s, "stop"));
  } else {
    throw bad_field("stop", "must be a string or an array of strings");
  }
  if (int(out.size()) > max_stop) throw bad_field("stop", fmt::format("at most {} stop strings", max_stop));
  for (const std::string& s : out)
    if (s.empty()) throw bad_field("stop", "a stop string must not be empty");
  return out;
}

// A grammar for generation: GrammarSpec's defaults (no free whitespace, strict objects).
GrammarSpec spec_of(GrammarKind kind, std::string text) {
  GrammarSpec s;
  s.kind = kind;
  s.text = std::move(text);
  return s;
}

// response_format, or llama.cpp's grammar / json_schema: at most one of them.
void parse_structured_output(const json& body, ApiRequest& r) {
  auto get = [&](const char* key) { return given(body, key); };
  auto take = [&](GrammarSpec spec, const std::string& field) {
    if (r.grammar) throw bad_field(field, fmt::format("only one of response_format, grammar and json_schema ({} is given too)", r.grammar_field));
    r.grammar = std::move(spec);
    r.grammar_field = field;
  };
  if (const json* v = get("response_format")) {
    if (!v->is_object() || !v->contains("type") || !(*v)["type"].is_string())
      throw bad_field("response_format", "must be an object with a type");
    const std::string type = (*v)["type"].get<std::string>();
    for (const auto& [k, _] : v->items())
      if (k != "type" && !(k == "json_schema" && type == "json_schema"))
        throw bad_field("response_format." + k, "unknown field");
    if (type == "json_object") {
      take(spec_of(GrammarKind::kAnyJson, ""), "response_format");
    } else if (type == "json_schema") {
      const json js = v->value("json_schema", json());
      if (!js.is_object()) throw bad_field("response_format.json_schema", "must be an object {name, schema, strict}");
      if (!js.contains("name") || !js["name"].is_string())
        throw bad_field("response_format.json_schema.name", "must be a string");
      for (const auto& [k, f] : js.items()) {
        if (k == "description") (void)string_field(f, "response_format.json_schema.description");
        else if (k == "strict" && !f.is_null()) (void)bool_field(f, "response_format.json_schema.strict");
        else if (k != "schema" && k != "name" && k != "strict") throw bad_field("response_format.json_schema." + k, "unknown field");
      }
      if (!js.contains("schema") || !(js["schema"].is_object() || js["schema"].is_boolean()))
        throw bad_field("response_format.json_schema.schema", "must be a JSON Schema (an object)");
      // Generated output keeps the schema's property order and adds no property it does
      // not name, strict or not: still inside what the schema allows, and a small model
      // left free to add properties can add them until max_tokens.
      take(spec_of(GrammarKind::kJsonSchema, js["schema"].dump()), "response_format.json_schema.schema");
    } else if (type == "text") {
      r.grammar_field = "response_format";
    } else {
      throw bad_field("response_format.type", "must be \"text\", \"json_object\" or \"json_schema\"");
    }
  }
  if (const json* v = get("grammar")) take(spec_of(GrammarKind::kGbnf, string_field(*v, "grammar")), "grammar");
  if (const json* v = get("json_schema")) {
    if (!v->is_object() && !v->is_boolean()) throw bad_field("json_schema", "must be a JSON Schema (an object)");
    take(spec_of(GrammarKind::kJsonSchema, v->dump()), "json_schema");
  }
  if (r.grammar && r.tools.active())
    throw bad_field(r.grammar_field, "structured output together with tools is not supported (tool calls have their own grammar)");
}

// Fields accepted for compatibility that must not ask for something this server lacks.
void refuse_unsupported(const json& body, Endpoint e) {
  auto present = [&](const char* k) { return body.contains(k) && !body[k].is_null(); };
  if (present("logit_bias") && !(body["logit_bias"].is_object() && body["logit_bias"].empty()))
    throw bad_field("logit_bias", "is not supported");
  if (present("echo") && bool_field(body["echo"], "echo")) throw bad_field("echo", "is not supported");
  if (present("suffix") && !(body["suffix"].is_string() && body["suffix"].get<std::string>().empty()))
    throw bad_field("suffix", "is not supported");
  if (present("best_of")) {
    const int64_t b = int_field(body["best_of"], "best_of", 1, 1);
    (void)b;
  }
  (void)e;
}

}  // namespace

ApiRequest parse_request(std::string_view text, Endpoint endpoint, const RequestLimits& limits) {
  json body;
  try {
    body = parse_json<json>(text, "request body");
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  return parse_request_body(body, endpoint, limits);
}

ApiRequest parse_request_body(const json& body, Endpoint endpoint, const RequestLimits& limits) {
  if (!body.is_object()) throw ApiError(400, "request body: must be a JSON object");
  const auto& known = known_fields(endpoint);
  for (const auto& [key, value] : body.items())
    if (!known.count(key)) throw bad_field(key, "unknown field");

  ApiRequest r;
  r.endpoint = endpoint;
  // OpenAI's defaults, not the CLI's: temperature 1 and top_p 1 with nothing else on.
  r.sampling.temperature = 1.0f;
  r.sampling.top_p = 1.0f;
  r.sampling.top_k = 0;
  r.sampling.min_p = 0.0f;
  auto get = [&](const char* key) { return given(body, key); };
  if (const json* v = get("model")) r.model = string_field(*v, "model");
  if (endpoint == Endpoint::kChat) {
    const json* m = get("messages");
    if (!m) throw bad_field("messages", "is required");
    r.messages = parse_messages(*m);
    r.tools = parse_tool_request(body);
  } else {
    const json* p = get("prompt");
    if (!p) throw bad_field("prompt", "is required");
    r.prompts = parse_prompts(*p, limits.vocab_size);
  }
  if (const json* v = get("stream")) r.stream = bool_field(*v, "stream");
  if (const json* v = get("stream_options")) {
    if (!v->is_object()) throw bad_field("stream_options", "must be an object");
    for (const auto& [key, value] : v->items())
      if (key != "include_usage") throw bad_field("stream_options." + key, "unknown field");
    if (v->contains("include_usage")) r.include_usage = bool_field((*v)["include_usage"], "stream_options.include_usage");
  }
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (const json* v = get(key)) r.max_tokens = int(int_field(*v, key, 1, limits.context_length));
  if (const json* v = get("temperature")) r.sampling.temperature = number_field(*v, "temperature", 0, 2);
  if (const json* v = get("top_p")) r.sampling.top_p = number_field(*v, "top_p", 0, 1);
  if (r.sampling.top_p <= 0) throw bad_field("top_p", "must be greater than 0");
  if (const json* v = get("frequency_penalty"))
    r.sampling.frequency_penalty = number_field(*v, "frequency_penalty", -2, 2);
  if (const json* v = get("presence_penalty")) r.sampling.presence_penalty = number_field(*v, "presence_penalty", -2, 2);
  if (const json* v = get("top_k")) {
    const int64_t k = int_field(*v, "top_k", -1, std::numeric_limits<int32_t>::max());
    r.sampling.top_k = k < 0 ? 0 : int(k);  // -1 is vLLM's "off"
  }
  if (const json* v = get("min_p")) r.sampling.min_p = number_field(*v, "min_p", 0, 1);
  if (const json* v = get("repetition_penalty"))
    r.sampling.repeat_penalty = number_field(*v, "repetition_penalty", 1e-3, 100);
  if (const json* v = get("seed")) {
    // Any 64-bit integer, as OpenAI takes it; the sampler's seed is its bit pattern.
    r.sampling.seed = uint64_t(int_field(*v, "seed", std::numeric_limits<int64_t>::min(),
                                         std::numeric_limits<int64_t>::max()));
    r.seeded = true;
  }
  if (const json* v = get("stop")) r.stop = parse_stop(*v, limits.max_stop);
  if (const json* v = get("n")) r.n = int(int_field(*v, "n", 1, limits.max_n));
  if (endpoint == Endpoint::kChat) {
    const bool want = get("logprobs") && bool_field(*get("logprobs"), "logprobs");
    if (const json* v = get("top_logprobs")) {
      const int k = int(int_field(*v, "top_logprobs", 0, limits.max_top_logprobs));
      if (!want) throw bad_field("top_logprobs", "needs logprobs: true");
      r.logprobs = k;
    } else if (want) {
      r.logprobs = 0;
    }
  } else if (const json* v = get("logprobs")) {
    r.logprobs = int(int_field(*v, "logprobs", 0, limits.max_top_logprobs));
  }
  if (const json* v = get("ignore_eos")) r.ignore_eos = bool_field(*v, "ignore_eos");
  if (const json* v = get("user")) r.user = string_field(*v, "user");
  refuse_unsupported(body, endpoint);
  parse_structured_output(body, r);
  // The sampler's own checks (the ones above are the API's ranges), named as fields.
  try {
    Sampler check(r.sampling);
  } catch (const ParamError& e) {
    throw bad_field(field_for_param(e.param(), endpoint), e.problem());
  }
  return r;
}

std::string field_for_param(const std::string& param, Endpoint endpoint) {
  if (param == "repeat_penalty") return "repetition_penalty";
  if (param == "max_new_tokens") return "max_tokens";
  if (param == "prompt") return endpoint == Endpoint::kChat ? "messages" : "prompt";
  if (param == "json") return "response_format";
  return param;
}

}  // namespace upg::server
