#include "server/tool-calls.h"

#include <algorithm>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "server/api-error.h"

namespace upg::server {

namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

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
  if (!fn.contains("name") || !fn["name"].is_string()) throw bad_field(where + ".function.name", "must be a string");
  const std::string name = fn["name"].get<std::string>();
  if (!valid_function_name(name))
    throw bad_field(where + ".function.name", "must be 1 to 64 letters, digits, '_' or '-'");
  if (fn.contains("description") && !fn["description"].is_string())
    throw bad_field(where + ".function.description", "must be a string");
  if (fn.contains("parameters") && !fn["parameters"].is_object())
    throw bad_field(where + ".function.parameters", "must be a JSON Schema object");
  if (fn.contains("strict") && !fn["strict"].is_boolean())
    throw bad_field(where + ".function.strict", "must be true or false");
  return name;
}

// Arguments as the JSON object they stand for (a JSON string holding one, as OpenAI
// sends them, or the object itself).
json arguments_object(const json& v, const std::string& where) {
  if (v.is_object()) return v;
  if (v.is_string()) {
    json j = json::parse(v.get<std::string>(), nullptr, false);
    if (!j.is_discarded() && j.is_object()) return j;
  }
  throw bad_field(where, "must be a JSON object, or a string holding one");
}

}  // namespace

ToolRequest parse_tool_request(const json& body) {
  ToolRequest t;
  auto get = [&](const char* key) -> const json* {
    auto it = body.find(key);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
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
      t.tools = ojson::parse((*tools).dump());  // the order of keys as given, for the template
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
  if (const json* v = get("parallel_tool_calls")) {
    if (!v->is_boolean()) throw bad_field("parallel_tool_calls", "must be true or false");
    t.parallel = v->get<bool>();
  }
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
    if (!fn.contains("name") || !fn["name"].is_string()) throw bad_field(w + ".function.name", "must be a string");
    json call = {{"type", "function"},
                 {"function",
                  {{"name", fn["name"]},
                   {"arguments", arguments_object(fn.value("arguments", json("{}")), w + ".function.arguments")}}}};
    if (c.contains("id")) {
      if (!c["id"].is_string()) throw bad_field(w + ".id", "must be a string");
      call["id"] = c["id"];
    }
    out.push_back(std::move(call));
  }
  return out;
}

ojson prompt_tools(const ToolRequest& t, const ToolCallFormat& f) {
  if (!t.active() || !f.template_renders_tools) return nullptr;
  return t.tools;
}

ojson prompt_messages(const json& messages, const ToolRequest& t, const ToolCallFormat& f) {
  ojson out = ojson::parse(messages.dump());
  if (f.template_renders_tools) return out;
  // The template knows no tool calls: earlier calls become the reply text this format
  // asks for, and the tools are described in the system message.
  for (ojson& m : out) {
    if (!m.contains("tool_calls")) continue;
    ojson calls = ojson::array();
    for (const ojson& c : m["tool_calls"])
      calls.push_back({{"name", c["function"]["name"]}, {"arguments", c["function"]["arguments"]}});
    m["content"] = ojson{{std::string(f.wrapper_key), calls}}.dump();
    m.erase("tool_calls");
  }
  if (!t.active()) return out;
  std::string listing;
  for (const ojson& tool : t.tools) listing += tool["function"].dump() + "\n";
  if (!listing.empty()) listing.pop_back();
  std::string preamble(f.system_preamble);
  if (const size_t at = preamble.find("{tools}"); at != std::string::npos) preamble.replace(at, 7, listing);
  if (!out.empty() && out[0].value("role", "") == "system" && out[0]["content"].is_string())
    out[0]["content"] = out[0]["content"].get<std::string>() + "\n\n" + preamble;
  else
    out.insert(out.begin(), ojson{{"role", "system"}, {"content", preamble}});
  return out;
}

size_t json_value_end(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  if (i == s.size()) return std::string_view::npos;
  if (s[i] != '{' && s[i] != '[') {  // a scalar ends at a delimiter, which may not have come yet
    if (s[i] == '"') {
      for (size_t j = i + 1; j < s.size(); ++j) {
        if (s[j] == '\\') ++j;
        else if (s[j] == '"') return j + 1;
      }
      return std::string_view::npos;
    }
    for (size_t j = i; j < s.size(); ++j)
      if (is_space(s[j]) || s[j] == ',' || s[j] == ']' || s[j] == '}') return j;
    return std::string_view::npos;
  }
  int depth = 0;
  bool in_string = false;
  for (size_t j = i; j < s.size(); ++j) {
    const char c = s[j];
    if (in_string) {
      if (c == '\\') ++j;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return j + 1;
    }
  }
  return std::string_view::npos;
}

ToolCallParser::ToolCallParser(const ToolCallFormat& f, const ToolRequest& t, std::string id_prefix)
    : f_(f), t_(t), id_prefix_(std::move(id_prefix)), state_(f.open.empty() ? State::kStart : State::kText) {}

bool ToolCallParser::take_call_object(const json& j, Output& out) {
  if (!j.is_object() || !j.contains(f_.name_key) || !j[f_.name_key].is_string()) return false;
  const std::string name = j[f_.name_key].get<std::string>();
  if (std::find(t_.names.begin(), t_.names.end(), name) == t_.names.end()) return false;
  json args = json::object();
  for (std::string_view key : f_.args_keys) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (it->is_string()) args = json::parse(it->get<std::string>(), nullptr, false);
    else args = *it;
    break;
  }
  if (!args.is_object()) return false;
  if (!t_.parallel && n_calls_ > 0) return true;  // one call asked for: later ones are dropped
  out.calls.push_back({fmt::format("{}_{}", id_prefix_, n_calls_), name, args.dump()});
  ++n_calls_;
  return true;
}

// One call's text after `open` (and before `close`, or the complete JSON value).
bool ToolCallParser::take_call(std::string_view body, Output& out) {
  body = trim(body);
  if (!f_.args_marker.empty()) {
    const size_t at = body.find(f_.args_marker);
    if (at == std::string_view::npos) return false;
    json args = json::parse(body.substr(at + f_.args_marker.size()), nullptr, false);
    return take_call_object({{std::string(f_.name_key), std::string(trim(body.substr(0, at)))},
                             {std::string(f_.args_keys.front()), args}},
                            out);
  }
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return false;
  if (!f_.array) return take_call_object(j, out);
  if (!j.is_array() || j.empty()) return false;
  Output trial;
  const int before = n_calls_;
  for (const json& c : j)
    if (!take_call_object(c, trial)) {
      n_calls_ = before;
      return false;
    }
  for (ToolCall& c : trial.calls) out.calls.push_back(std::move(c));
  return true;
}

void ToolCallParser::settle_held(Output& out) {
  // Bare JSON: a call, the wrapper with calls, or the wrapper's plain answer.
  std::string_view body = trim(buf_);
  if (!f_.prefix.empty() && body.substr(0, f_.prefix.size()) == f_.prefix) body.remove_prefix(f_.prefix.size());
  const json j = json::parse(body, nullptr, false);
  bool ok = false;
  Output got;
  if (!j.is_discarded() && j.is_object()) {
    if (f_.wrapper_key.empty()) {
      ok = take_call_object(j, got);
    } else if (j.size() == 1 && j.contains("response") && j["response"].is_string()) {
      got.content = j["response"].get<std::string>();
      ok = true;
    } else if (j.size() == 1 && j.contains(f_.wrapper_key) && j[f_.wrapper_key].is_array() &&
               !j[f_.wrapper_key].empty()) {
      ok = true;
      for (const json& c : j[f_.wrapper_key]) ok = ok && take_call_object(c, got);
    }
  }
  if (ok) {
    out.content += got.content;
    for (ToolCall& c : got.calls) out.calls.push_back(std::move(c));
  } else {
    n_calls_ -= int(got.calls.size());
    out.content += buf_;
  }
  buf_.clear();
}

void ToolCallParser::scan(Output& out, bool final) {
  for (;;) {
    switch (state_) {
      case State::kStart: {
        const size_t first = buf_.find_first_not_of(" \n\r\t");
        if (first == std::string::npos) {
          if (final) out.content += std::exchange(buf_, {});
          return;
        }
        const std::string_view rest = std::string_view(buf_).substr(first);
        const bool may_be_prefix = !f_.prefix.empty() && f_.prefix.substr(0, std::min(rest.size(), f_.prefix.size())) ==
                                                             rest.substr(0, std::min(rest.size(), f_.prefix.size()));
        if (rest[0] == '{' || may_be_prefix) {
          state_ = State::kHeld;
        } else {
          state_ = State::kText;
          if (f_.open.empty()) {  // bare formats: a reply that does not start as JSON is text
            out.content += std::exchange(buf_, {});
            return;
          }
        }
        continue;
      }
      case State::kHeld:
        if (final) settle_held(out);
        return;
      case State::kText: {
        if (f_.open.empty()) {
          out.content += std::exchange(buf_, {});
          return;
        }
        const size_t at = buf_.find(f_.open);
        if (at == std::string::npos) {
          const size_t keep = final ? 0 : partial_suffix(buf_, f_.open);
          out.content += buf_.substr(0, buf_.size() - keep);
          buf_.erase(0, buf_.size() - keep);
          return;
        }
        out.content += buf_.substr(0, at);
        buf_.erase(0, at);  // the open marker stays at the front until its call completes
        state_ = State::kCall;
        continue;
      }
      case State::kCall: {
        const std::string_view body = std::string_view(buf_).substr(f_.open.size());
        size_t end = std::string::npos, next = 0;  // the call's body ends at `end`, the text after at `next`
        if (!f_.close.empty()) {
          end = body.find(f_.close);
          next = end == std::string::npos ? 0 : end + f_.close.size();
        } else {
          const size_t marker = f_.args_marker.empty() ? 0 : body.find(f_.args_marker);
          if (marker != std::string::npos) {
            const size_t from = f_.args_marker.empty() ? 0 : marker + f_.args_marker.size();
            const size_t v = json_value_end(body.substr(from));
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
          buf_.erase(0, f_.open.size() + next);
        } else {  // not a call after all: its text is content, and scanning goes on after it
          out.content += buf_.substr(0, f_.open.size() + next);
          buf_.erase(0, f_.open.size() + next);
        }
        state_ = State::kText;
        continue;
      }
    }
  }
}

ToolCallParser::Output ToolCallParser::feed(std::string_view text) {
  Output out;
  buf_.append(text);
  scan(out, false);
  return out;
}

ToolCallParser::Output ToolCallParser::finish() {
  Output out;
  scan(out, true);
  return out;
}

ToolCallParser::Output parse_tool_calls(std::string_view reply, const ToolCallFormat& f, const ToolRequest& t,
                                        const std::string& id_prefix) {
  ToolCallParser p(f, t, id_prefix);
  ToolCallParser::Output out = p.feed(reply);
  ToolCallParser::Output rest = p.finish();
  out.content += rest.content;
  for (ToolCall& c : rest.calls) out.calls.push_back(std::move(c));
  return out;
}

}  // namespace upg::server
