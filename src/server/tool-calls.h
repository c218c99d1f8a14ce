#pragma once
// Tool calls of /v1/chat/completions: the request's tools and tool_choice checked, the
// conversation's earlier calls and results put in the shape chat templates read, and the
// model's reply split into text and calls in its family's format (tool-call-formats.h),
// whole or as it streams. Plain data in, plain data out.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/tool-call-formats.h"

namespace upg::server {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // the arguments object as JSON text
};

enum class ToolChoice { kNone, kAuto, kRequired, kNamed };

struct ToolRequest {
  nlohmann::ordered_json tools;  // as given, checked: [{type: "function", function: {name, ...}}]; null: none
  std::vector<std::string> names;
  ToolChoice choice = ToolChoice::kNone;  // kNone also when no tools were given
  std::string named;                      // kNamed: that function
  bool parallel = true;                   // parallel_tool_calls
  bool active() const { return choice != ToolChoice::kNone; }
};

// tools, tool_choice and parallel_tool_calls of a chat body. Throws ApiError (400)
// naming the field and its path (tools[2].function.name, tool_choice.function.name).
ToolRequest parse_tool_request(const nlohmann::ordered_json& body);

// An assistant message's tool_calls, checked; arguments become JSON objects (templates
// write them with tojson, as Hugging Face's and vLLM's do). `where`: "messages[3].tool_calls".
nlohmann::ordered_json parse_message_tool_calls(const nlohmann::ordered_json& v, const std::string& where);

// What the chat template renders: the messages (with the format's system preamble, and
// earlier calls as reply text where the template knows no tool calls) and the tools
// (null when the template does not render them or no tool is active).
nlohmann::ordered_json prompt_messages(const nlohmann::ordered_json& messages, const ToolRequest& t,
                                       const ToolCallFormat& f);
nlohmann::ordered_json prompt_tools(const ToolRequest& t, const ToolCallFormat& f);

// The structural tag (XGrammar's JSON form: triggered tags) that holds a reply to the
// request's tool_choice in format f, written so that ToolCallParser reads what it allows:
// "auto" (triggered tags) leaves text free until the format's call opener, then holds
// each call to one of the tools' parameter schemas; "required" (tags with a separator)
// asks for calls from the first token on, a named function for exactly that one;
// parallel_tool_calls off stops after the first. Null when no tool is active.
nlohmann::ordered_json tool_call_structural_tag(const ToolCallFormat& f, const ToolRequest& t);

// json_value_end as the text arrives: each scan() is given the text so far (the same
// text, longer each time) and reads only the bytes it has not read yet, so a value
// streamed in n pieces costs its length, not n times it.
class JsonValueEnd {
 public:
  size_t scan(std::string_view text);

 private:
  enum class Phase { kSpace, kScalar, kNested, kEnded };  // kNested: inside a string, object or array
  Phase phase_ = Phase::kSpace;
  size_t pos_ = 0;  // the next byte to read (kEnded: the end)
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
};

// Splits a reply into content and calls as its text arrives: feed() returns the text
// that is surely content and the calls it completed; text that may open a call is held
// back until it does or cannot. The last piece (last = true) settles what is held: a
// call that never completed, or one that names no given tool or is not valid JSON, comes
// back as the content it was, so no text is lost.
class ToolCallParser {
 public:
  struct Output {
    std::string content;
    std::vector<ToolCall> calls;
  };
  // Call ids are id_prefix + "_" + their index.
  ToolCallParser(const ToolCallFormat& f, const ToolRequest& t, std::string id_prefix);
  Output feed(std::string_view text, bool last = false);
  int calls() const { return n_calls_; }

 private:
  // kStart and kHeld: formats with a wrapper, whose reply may be {"response": text}.
  enum class State { kStart, kHeld, kText, kCall };
  void scan(Output& out, bool final);
  bool take_call(std::string_view body, Output& out);
  bool take_calls(const nlohmann::ordered_json& j, Output& out);
  bool take_call_object(const nlohmann::ordered_json& j, Output& out);
  void emit_content(std::string_view text, bool before_call, Output& out);

  const ToolCallFormat& f_;
  const ToolRequest& t_;
  std::string id_prefix_;
  std::string opener_;  // what opens a call (the open marker, or a bare call's first text)
  State state_;
  std::string buf_;
  int n_calls_ = 0;
  // kCall: how far its text has been searched (the close marker, the args marker, the
  // JSON value's end), so that each piece of a streamed call is read once.
  struct CallScan {
    size_t close_from = 0;  // the close marker is not in the body before this
    size_t marker_from = 0;  // nor the args marker
    size_t marker = std::string_view::npos;  // where the args marker is, once found
    JsonValueEnd value;
  } call_;
};

// A whole reply (the same parser: a streamed reply reassembles to this).
ToolCallParser::Output parse_tool_calls(std::string_view reply, const ToolCallFormat& f, const ToolRequest& t,
                                        const std::string& id_prefix);

// Where the JSON value at the start of `text` (after whitespace) ends: one past its last
// byte, or npos when it has not ended yet. Strings and escapes are respected; whether
// the value is valid JSON is for the parser to say.
size_t json_value_end(std::string_view text);

}  // namespace upg::server
