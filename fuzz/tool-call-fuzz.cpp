// The server's tool calls (src/server/tool-calls.h): an options byte (the reply format,
// the streaming chunk size), a request body as JSON text, then after a NUL byte a model
// reply. The body is read as the server reads one (parse_json, depth-limited):
// parse_tool_request on it, parse_message_tool_calls on its "tool_calls" (an assistant
// message's calls, put here at the top level), then what the chat template and the
// grammar get (prompt_messages, prompt_tools, tool_call_structural_tag). The reply goes
// through ToolCallParser in chunks and whole. A bad request must be an ApiError (the
// server's 400) or an upg::Error; a reply is never an error.
#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz-util.h"
#include "server/api-error.h"
#include "server/tool-calls.h"
#include "upg/core/json.h"

using namespace upg;
using namespace upg::server;
using json = nlohmann::ordered_json;

namespace {

bool same_calls(const std::vector<ToolCall>& a, const std::vector<ToolCall>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || a[i].name != b[i].name || a[i].arguments != b[i].arguments) return false;
  return true;
}

void parse_reply(std::string_view reply, const ToolCallFormat& f, const ToolRequest& t, size_t chunk) {
  const ToolCallParser::Output whole = parse_tool_calls(reply, f, t, "call");
  ToolCallParser p(f, t, "call");
  ToolCallParser::Output streamed;
  for (size_t at = 0;; at += chunk) {
    const bool last = at + chunk >= reply.size();
    ToolCallParser::Output o = p.feed(reply.substr(std::min(at, reply.size()), chunk), last);
    streamed.content += o.content;
    for (ToolCall& c : o.calls) streamed.calls.push_back(std::move(c));
    if (last) break;
  }
  // The documented contract: a streamed reply reassembles to the whole one.
  UPG_FUZZ_CHECK(streamed.content == whole.content);
  UPG_FUZZ_CHECK(same_calls(streamed.calls, whole.calls));
  UPG_FUZZ_CHECK(p.calls() == int(streamed.calls.size()));
  for (const ToolCall& c : whole.calls) {
    UPG_FUZZ_CHECK(std::find(t.names.begin(), t.names.end(), c.name) != t.names.end());
    // What the server sends as arguments is a JSON object (the request's depth limit
    // holds for it, so a client can read it back).
    const json args = parse_json_or_discard<json>(c.arguments);
    UPG_FUZZ_CHECK(args.is_object());
  }
  // Where nothing can open a call (no open marker, or for bare JSON formats no '{'), the
  // reply is all text, the optional prefix included.
  if (f.wrapper_key.empty() && reply.find(f.open.empty() ? std::string_view("{") : f.open) == std::string::npos)
    UPG_FUZZ_CHECK(whole.content == reply);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const ToolCallFormat> formats = tool_call_formats();
  const ToolCallFormat& f = formats[data[0] % formats.size()];
  const auto parts = upg::fuzz::split_nul(upg::fuzz::as_text(data + 1, size - 1), 2);
  const std::string_view reply = parts.size() > 1 ? parts[1] : std::string_view();
  // 1 to 32 bytes a feed, and at most 256 feeds: a call's text is read once however it
  // is cut, but whitespace held back before a wrapper's reply or after a prefix is read
  // again on each feed, so tiny pieces of a 64 KiB reply of spaces would make a run slow.
  const size_t chunk = std::max<size_t>(1 + (data[0] >> 3), reply.size() / 256);
  ToolRequest t;
  try {
    const json body = parse_json<json>(parts[0], "request body");
    t = parse_tool_request(body);
    json messages = json::array({{{"role", "user"}, {"content", "hi"}}});
    if (body.is_object() && body.contains("tool_calls"))
      messages.push_back({{"role", "assistant"}, {"content", nullptr},
                          {"tool_calls", parse_message_tool_calls(body["tool_calls"], "tool_calls")}});
    (void)prompt_messages(messages, t, f).dump();
    (void)prompt_tools(t, f).dump();
    (void)tool_call_structural_tag(f, t).dump();
  } catch (const ApiError&) {
    // A 400. The reply is parsed all the same, with the tools read before the refusal.
  } catch (const Error&) {
    t = ToolRequest();
  }
  parse_reply(reply, f, t, chunk);
  return 0;
}
