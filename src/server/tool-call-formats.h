#pragma once
// How model families write tool calls, as data: the text that opens a call, what closes
// it, the JSON inside, and how a chat template is recognised as one of them. The server
// and the parser (tool-calls.h) read these fields and never compare family names, so a
// new family is one more entry in the table (tool-call-formats.cpp).
#include <span>
#include <string_view>

namespace upg::server {

struct ToolCallFormat {
  std::string_view name;  // for logs and /v1/models' metadata
  // Substrings of a chat template's source that mark it as this format; the first entry
  // of the table with one present is the model's format.
  std::span<const std::string_view> markers;
  // Text that opens the calls; empty: the reply is bare JSON (a call, or the wrapper
  // object below), optionally after `prefix`.
  std::string_view open;
  // Text that closes one call (or the array); empty: the end of the reply.
  std::string_view close;
  std::string_view prefix;  // optional text before bare JSON (Llama 3.1's <|python_tag|>)
  bool array = false;       // the body is a JSON array of calls
  // Calls written as name, this marker, then the arguments' JSON (Mistral's [ARGS]);
  // empty: a call is a JSON object with name_key and one of args_keys.
  std::string_view args_marker;
  // Keys of a call object: the function's name and its arguments (the first key of
  // args_keys is the one this family writes; the others are accepted too).
  std::string_view name_key = "name";
  std::span<const std::string_view> args_keys;
  // Bare JSON wrapped in an object: {"<wrapper_key>": [calls]} (or {"response": text},
  // which is a plain answer). Empty: no wrapper.
  std::string_view wrapper_key;
  // The chat template renders the tools itself (its `tools` variable); false: the tools
  // and the reply format are described in a system message (system_preamble, where
  // "{tools}" stands for the tools' JSON, one per line).
  bool template_renders_tools = true;
  std::string_view system_preamble;
};

// The format of a chat template (the generic JSON format when none matches).
const ToolCallFormat& tool_call_format_for(std::string_view chat_template_source);
// Every format, the generic one last.
std::span<const ToolCallFormat> tool_call_formats();

}  // namespace upg::server
