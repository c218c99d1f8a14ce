#include "server/tool-calls.h"

#include <algorithm>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "server/request-fields.h"
#include "upg/core/json.h"

namespace upg::server {

namespace {

// Ordered throughout: schemas keep their properties' order, calls their arguments'.
using json = nlohmann::ordered_json;

// JSON inside a request's strings and in the model's reply, or a discarded value: under
// the nesting limit of every other JSON the server reads (upg/core/json.h), since a value
// nested thousands deep overflows the stack when it is copied or dumped.
json parse_or_discard(std::string_view text) { return parse_json_or_discard<json>(text); }

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The longest suffix of `text` that is a proper prefix of `marker`: text that may yet
// become the marker and so is held back.
size_t partial_suffix(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n)
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

// OpenAI's rule for function names.
bool valid_function_name(const std::string& s) {
  static const std::regex re("^[A-Za-z0-9_-]{1,64}$");
  return std::regex_match(s, re);
}

std::string tool_name(const json& tool, const std::string& where) {
  if (!tool.is_object()) throw bad_field(where, "must be an object {\"type\": \"function\", \"function\": {...}}");
  if (tool.value("type", json()) != "function") throw bad_field(where + ".type", "must be \"function\"");
  if (!tool.contains("function") || !tool["function"].is_object())
    throw bad_field(where + ".function", "must be an object with name, description and parameters");
  const json& fn = tool["function"];
  for (const auto& [key, value] : fn.items())
    if (key != "name" && key != "description" && key != "parameters" && key != "strict")
      throw bad_field(where + ".function." + key, "unknown field");
  const std::string name = string_field(fn.value("name", json()), where + ".function.name");
  if (!valid_function_name(name))
    throw bad_field(where + ".function.name", "must be 1 to 64 letters, digits, '_' or '-'");
  if (fn.contains("description")) (void)string_field(fn["description"], where + ".function.description");
  if (fn.contains("parameters") && !fn["parameters"].is_object())
    throw bad_field(where + ".function.parameters", "must be a JSON Schema object");
  if (fn.contains("strict")) (void)bool_field(fn["strict"], where + ".function.strict");
  return name;
}

// Arguments as the JSON object they stand for (a JSON string holding one, as OpenAI
// sends them, or the object itself).
json arguments_object(const json& v, const std::string& where) {
  if (v.is_object()) return v;
  if (v.is_string()) {
    json j = parse_or_discard(v.get<std::string>());
    if (!j.is_discarded() && j.is_object()) return j;
  }
  throw bad_field(where, "must be a JSON object, or a string holding one");
}

// The text that opens a call: the format's open marker, or for bare JSON the start of
// the call's object (the parser looks for it, the grammar triggers on it).
std::string call_opener(const ToolCallFormat& f) {
  if (!f.open.empty()) return std::string(f.open);
  if (!f.wrapper_key.empty()) return "{\"" + std::string(f.wrapper_key) + "\"";
  return "{\"" + std::string(f.name_key) + "\"";
}

}  // namespace

ToolRequest parse_tool_request(const json& body) {
  ToolRequest t;
  auto get = [&](const char* key) { return given(body, key); };
  const json* tools = get("tools");
  if (tools) {
    if (!tools->is_array()) throw bad_field("tools", "must be an array of tools");
    std::set<std::string> seen;
    for (size_t i = 0; i < tools->size(); ++i) {
      const std::string where = fmt::format("tools[{}]", i);
      std::string name = tool_name((*tools)[i], where);
      if (!seen.insert(name).second) throw bad_field(where + ".function.name", fmt::format("'{}' is named twice", name));
      t.names.push_back(std::move(name));
    }
    if (!t.names.empty()) {
      t.tools = *tools;
      t.choice = ToolChoice::kAuto;
    }
  }
  if (const json* v = get("tool_choice")) {
    if (v->is_string()) {
      const std::string s = v->get<std::string>();
      if (s == "none") t.choice = ToolChoice::kNone;
      else if (s == "auto") t.choice = t.names.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
      else if (s == "required") t.choice = ToolChoice::kRequired;
      else throw bad_field("tool_choice", "must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", ...}");
    } else if (v->is_object()) {
      if (v->value("type", json()) != "function") throw bad_field("tool_choice.type", "must be \"function\"");
      const json fn = v->value("function", json());
      if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string())
        throw bad_field("tool_choice.function.name", "must be a string");
      t.named = fn["name"].get<std::string>();
      if (std::find(t.names.begin(), t.names.end(), t.named) == t.names.end())
        throw bad_field("tool_choice.function.name", fmt::format("names no tool in tools: '{}'", t.named));
      t.choice = ToolChoice::kNamed;
    } else {
      throw bad_field("tool_choice", "must be a string or an object");
    }
    if (t.choice == ToolChoice::kRequired && t.names.empty())
      throw bad_field("tool_choice", "\"required\" needs tools");
  }
  if (const json* v = get("parallel_tool_calls")) t.parallel = bool_field(*v, "parallel_tool_calls");
  return t;
}

json parse_message_tool_calls(const json& v, const std::string& where) {
  if (!v.is_array()) throw bad_field(where, "must be an array of tool calls");
  json out = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string w = fmt::format("{}[{}]", where, i);
    const json& c = v[i];
    if (!c.is_object()) throw bad_field(w, "must be an object {id, type, function}");
    if (c.contains("type") && c["type"] != "function") throw bad_field(w + ".type", "must be \"function\"");
    if (!c.contains("function") || !c["function"].is_object()) throw bad_field(w + ".function", "must be an object");
    const json& fn = c["function"];
    (void)string_field(fn.value("name", json()), w + ".function.name");
    json call = {{"type", "function"},
                 {"function",
                  {{"name", fn["name"]},
                   {"arguments", arguments_object(fn.value("arguments", json("{}")), w + ".function.arguments")}}}};
    if (c.contains("id")) call["id"] = string_field(c["id"], w + ".id");
    out.push_back(std::move(call));
  }
  return out;
}

json prompt_tools(const ToolRequest& t, const ToolCallFormat& f) {
  if (!t.active() || !f.template_renders_tools) return nullptr;
  return t.tools;
}

json prompt_messages(const json& messages, const ToolRequest& t, const ToolCallFormat& f) {
  json out = messages;
  if (f.template_renders_tools) return out;
  // The template knows no tool calls: earlier calls become the reply text this format
  // asks for, and the tools are described in the system message.
  for (json& m : out) {
    if (!m.contains("tool_calls")) continue;
    json calls = json::array();
    for (const json& c : m["tool_calls"])
      calls.push_back({{"name", c["function"]["name"]}, {"arguments", c["function"]["arguments"]}});
    m["content"] = json{{std::string(f.wrapper_key), calls}}.dump();
    m.erase("tool_calls");
  }
  if (!t.active()) return out;
  std::string listing;
  for (const json& tool : t.tools) listing += tool["function"].dump() + "\n";
  if (!listing.empty()) listing.pop_back();
  std::string preamble(f.system_preamble);
  if (const size_t at = preamble.find("{tools}"); at != std::string::npos) preamble.replace(at, 7, listing);
  if (!out.empty() && out[0].value("role", "") == "system" && out[0]["content"].is_string())
    out[0]["content"] = out[0]["content"].get<std::string>() + "\n\n" + preamble;
  else
    out.insert(out.begin(), json{{"role", "system"}, {"content", preamble}});
  return out;
}

json tool_call_structural_tag(const ToolCallFormat& f, const ToolRequest& t) {
  if (!t.active()) return nullptr;
  const std::string name_key(f.name_key), args_key(f.args_keys.front());
  // What opens any call, and what opens and closes the call of `name`: the same text the
  // parser looks for (JSON with the format's keys, its open and close markers).
  const std::string trigger = call_opener(f);
  auto begin_end = [&](const std::string& name) -> std::pair<std::string, std::string> {
    const std::string head = "{\"" + name_key + "\": " + json(name).dump() + ", \"" + args_key + "\": ";
    if (!f.args_marker.empty()) return {std::string(f.open) + name + std::string(f.args_marker), ""};
    if (!f.wrapper_key.empty()) return {"{\"" + std::string(f.wrapper_key) + "\": [" + head, "}]}"};
    if (f.array) return {std::string(f.open) + "[" + head, "}]"};
    if (!f.open.empty()) return {std::string(f.open) + "\n" + head, "}\n" + std::string(f.close)};
    return {head, "}"};
  };
  json tags = json::array();
  for (const json& tool : t.tools) {
    const std::string name = tool["function"]["name"];
    if (t.choice == ToolChoice::kNamed && name != t.named) continue;
    const json params = tool["function"].contains("parameters") ? tool["function"]["parameters"]
                                                                  : json{{"type", "object"}};
    const auto [begin, end] = begin_end(name);
    tags.push_back({{"type", "tag"},
                    {"begin", begin},
                    // At most one whitespace character between JSON tokens: a small model
                    // left free to add whitespace can add it until max_tokens.
                    {"content", {{"type", "json_schema"}, {"json_schema", params}, {"max_whitespace_cnt", 1}}},
                    {"end", end}});
  }
  const bool forced = t.choice == ToolChoice::kRequired || t.choice == ToolChoice::kNamed;
  json format = forced ? json{{"type", "tags_with_separator"}, {"tags", tags}, {"separator", "\n"}}  // calls from the first token on
                       : json{{"type", "triggered_tags"}, {"triggers", json::array({trigger})}, {"tags", tags}};
  format["at_least_one"] = forced;
  format["stop_after_first"] = !t.parallel || t.choice == ToolChoice::kNamed;
  return {{"type", "structural_tag"}, {"format", format}};
}

size_t JsonValueEnd::scan(std::string_view s) {
  while (phase_ != Phase::kEnded && pos_ < s.size()) {
    const char c = s[pos_];
    switch (phase_) {
      case Phase::kSpace:  // the value's first byte is read again by its phase
        if (is_space(c)) ++pos_;
        else phase_ = c == '{' || c == '[' || c == '"' ? Phase::kNested : Phase::kScalar;
        break;
      case Phase::kScalar:  // a scalar ends at a delimiter, which may not have come yet
        if (is_space(c) || c == ',' || c == ']' || c == '}') phase_ = Phase::kEnded;
        else ++pos_;
        break;
      case Phase::kNested:  // a string alone is a string at depth 0
        ++pos_;
        if (escaped_) {
          escaped_ = false;
        } else if (in_string_) {
          if (c == '\\') {
            escaped_ = true;
          } else if (c == '"') {
            in_string_ = false;
            if (depth_ == 0) phase_ = Phase::kEnded;
          }
        } else if (c == '"') {
          in_string_ = true;
        } else if (c == '{' || c == '[') {
          ++depth_;
        } else if ((c == '}' || c == ']') && --depth_ == 0) {
          phase_ = Phase::kEnded;
        }
        break;
      case Phase::kEnded:
        break;
    }
  }
  return phase_ == Phase::kEnded ? pos_ : std::string_view::npos;
}

size_t json_value_end(std::string_view s) { return JsonValueEnd().scan(s); }

ToolCallParser::ToolCallParser(const ToolCallFormat& f, const ToolRequest& t, std::string id_prefix)
    : f_(f),
      t_(t),
      id_prefix_(std::move(id_prefix)),
      opener_(call_opener(f)),
      state_(f.wrapper_key.empty() ? State::kText : State::kStart) {}

bool ToolCallParser::take_call_object(const json& j, Output& out) {
  if (!j.is_object() || !j.contains(f_.name_key) || !j[f_.name_key].is_string()) return false;
  const std::string name = j[f_.name_key].get<std::string>();
  if (std::find(t_.names.begin(), t_.names.end(), name) == t_.names.end()) return false;
  json args = json::object();
  for (std::string_view key : f_.args_keys) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (it->is_string()) args = parse_or_discard(it->get<std::string>());
    else args = *it;
    break;
  }
  if (!args.is_object()) return false;
  if (!t_.parallel && n_calls_ > 0) return true;  // one call asked for: later ones are dropped
  out.calls.push_back({fmt::format("{}_{}", id_prefix_, n_calls_), name, args.dump()});
  ++n_calls_;
  return true;
}

// Calls from a JSON value: one call object, an array of them, or the wrapper object.
// All or nothing: a value with one bad call is no call at all.
bool ToolCallParser::take_calls(const json& j, Output& out) {
  const json* list = &j;
  if (!f_.wrapper_key.empty()) {
    if (!j.is_object() || j.size() != 1 || !j.contains(f_.wrapper_key)) return false;
    list = &j[f_.wrapper_key];
  }
  if (!f_.wrapper_key.empty() || f_.array) {
    if (!list->is_array() || list->empty()) return false;
    Output trial;
    const int before = n_calls_;
    for (const json& c : *list)
      if (!take_call_object(c, trial)) {
        n_calls_ = before;
        return false;
      }
    for (ToolCall& c : trial.calls) out.calls.push_back(std::move(c));
    return true;
  }
  return take_call_object(j, out);
}

// One call's text: after `open` (and before `close`, or the complete JSON value), or for
// bare JSON formats the value itself.
bool ToolCallParser::take_call(std::string_view body, Output& out) {
  body = trim(body);
  if (!f_.args_marker.empty()) {
    const size_t at = body.find(f_.args_marker);
    if (at == std::string_view::npos) return false;
    json args = parse_or_discard(body.substr(at + f_.args_marker.size()));
    return take_call_object({{std::string(f_.name_key), std::string(trim(body.substr(0, at)))},
                             {std::string(f_.args_keys.front()), args}},
                            out);
  }
  const json j = parse_or_discard(body);
  return !j.is_discarded() && take_calls(j, out);
}

// Text that is content, less the format's optional prefix where it stands right before a
// call (Llama 3.1's <|python_tag|>).
void ToolCallParser::emit_content(std::string_view text, bool before_call, Output& out) {
  if (before_call && !f_.prefix.empty()) {
    const std::string_view t = trim(text);
    if (t.size() >= f_.prefix.size() && t.substr(t.size() - f_.prefix.size()) == f_.prefix)
      text = text.substr(0, size_t(t.data() - text.data()) + t.size() - f_.prefix.size());
  }
  out.content.append(text);
}

void ToolCallParser::scan(Output& out, bool final) {
  for (;;) {
    switch (state_) {
      case State::kStart: {  // wrapper formats: a reply that is one JSON object is read whole
        const size_t first = buf_.find_first_not_of(" \n\r\t");
        if (first == std::string::npos && !final) return;
        state_ = first != std::string::npos && buf_[first] == '{' ? State::kHeld : State::kText;
        continue;
      }
      case State::kHeld: {
        if (!final) return;
        // The wrapper's plain answer, {"response": "..."}; anything else is read as text
        // that may hold a call.
        const json j = parse_or_discard(trim(buf_));
        if (!j.is_discarded() && j.is_object() && j.size() == 1 && j.contains("response") &&
            j["response"].is_string()) {
          out.content += j["response"].get<std::string>();
          buf_.clear();
          return;
        }
        state_ = State::kText;
        continue;
      }
      case State::kText: {
        const size_t at = buf_.find(opener_);
        if (at == std::string::npos) {
          size_t keep = final ? 0 : partial_suffix(buf_, opener_);
          if (!final && !f_.prefix.empty()) {  // a prefix that a call may follow is held too
            const size_t p = buf_.rfind(f_.prefix);
            if (p != std::string::npos) {  // the prefix, then perhaps the start of a call
              const std::string_view after = trim(std::string_view(buf_).substr(p + f_.prefix.size()));
              if (std::string_view(opener_).substr(0, after.size()) == after) keep = std::max(keep, buf_.size() - p);
            }
            keep = std::max(keep, partial_suffix(buf_, f_.prefix));
          }
          emit_content(std::string_view(buf_).substr(0, buf_.size() - keep), false, out);
          buf_.erase(0, buf_.size() - keep);
          return;
        }
        emit_content(std::string_view(buf_).substr(0, at), true, out);
        buf_.erase(0, at);  // the opener stays at the front until its call completes
        state_ = State::kCall;
        call_ = CallScan();
        continue;
      }
      case State::kCall: {
        // The call's text starts after the open marker, or at the JSON value itself.
        const size_t skip = f_.open.empty() ? 0 : f_.open.size();
        const std::string_view body = std::string_view(buf_).substr(skip);
        // Each search starts where the last one left off (call_): a marker found now
        // cannot lie wholly in text searched before.
        size_t end = std::string::npos, next = 0;  // the body ends at `end`, the text after it at `next`
        if (!f_.close.empty()) {
          end = body.find(f_.close, call_.close_from);
          if (end == std::string::npos)
            call_.close_from = body.size() - std::min(body.size(), f_.close.size() - 1);
          next = end == std::string::npos ? 0 : end + f_.close.size();
        } else {
          if (f_.args_marker.empty()) {
            call_.marker = 0;
          } else if (call_.marker == std::string::npos) {
            call_.marker = body.find(f_.args_marker, call_.marker_from);
            if (call_.marker == std::string::npos)
              call_.marker_from = body.size() - std::min(body.size(), f_.args_marker.size() - 1);
          }
          if (call_.marker != std::string::npos) {
            const size_t from = f_.args_marker.empty() ? 0 : call_.marker + f_.args_marker.size();
            const size_t v = call_.value.scan(body.substr(from));
            if (v != std::string::npos) end = next = from + v;
          }
        }
        if (end == std::string::npos) {
          if (final) {  // never completed (cut by max_tokens): it stays the text it was
            out.content += std::exchange(buf_, {});
            state_ = State::kText;
          }
          return;
        }
        if (take_call(body.substr(0, end), out)) {
          buf_.erase(0, skip + next);
        } else {  // not a call after all: its opener is content, and scanning goes on after it
          out.content += buf_.substr(0, opener_.size());
          buf_.erase(0, opener_.size());
        }
        state_ = State::kText;
        continue;
      }
    }
  }
}

ToolCallParser::Output ToolCallParser::feed(std::string_view text, bool last) {
  Output out;
  buf_.append(text);
  scan(out, last);
  return out;
}

ToolCallParser::Output parse_tool_calls(std::string_view reply, const ToolCallFormat& f, const ToolRequest& t,
                                        const std::string& id_prefix) {
  return ToolCallParser(f, t, id_prefix).feed(reply, true);
}

}  // namespace upg::server
