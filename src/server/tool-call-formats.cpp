#include "server/tool-call-formats.h"

#include <array>

namespace upg::server {

namespace {

using sv = std::string_view;

constexpr std::array<sv, 1> kArguments = {"arguments"};
constexpr std::array<sv, 2> kParameters = {"parameters", "arguments"};

// Hermes 2 Pro / 3, Qwen 2.5 / 3, SmolLM3 and the others whose templates ask for
// <tool_call>{"name": ..., "arguments": {...}}</tool_call>, one call per pair.
constexpr std::array<sv, 1> kHermesMarkers = {"<tool_call>"};
// Mistral Small 3.2 and later: [TOOL_CALLS]name[ARGS]{...} per call.
constexpr std::array<sv, 1> kMistralArgsMarkers = {"[ARGS]"};
// Mistral Nemo / 7B v0.3: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...].
constexpr std::array<sv, 1> kMistralMarkers = {"[TOOL_CALLS]"};
// Llama 3.1 / 3.2 / 3.3: the reply is {"name": ..., "parameters": {...}}, after
// <|python_tag|> on 3.1 when it chooses to.
constexpr std::array<sv, 1> kLlama3Markers = {"\"parameters\": dictionary of argument name"};

constexpr sv kGenericPreamble =
    "You can call the following tools. Each is described by a JSON object (its name, what it does, and the JSON "
    "Schema of its arguments):\n{tools}\n"
    "To call tools, reply with only a JSON object {\"tool_calls\": [{\"name\": <tool name>, \"arguments\": "
    "<arguments object>}]}. To answer directly, reply with only {\"response\": <your answer as a string>}.";

// Assigned field by field: designated initializers that leave fields to their defaults
// trip GCC 12's -Wmissing-field-initializers.
std::array<ToolCallFormat, 5> make_formats() {
  std::array<ToolCallFormat, 5> f{};
  f[0].name = "hermes";
  f[0].markers = kHermesMarkers;
  f[0].open = "<tool_call>";
  f[0].close = "</tool_call>";
  f[0].args_keys = kArguments;

  f[1].name = "mistral-args";
  f[1].markers = kMistralArgsMarkers;
  f[1].open = "[TOOL_CALLS]";
  f[1].args_marker = "[ARGS]";
  f[1].args_keys = kArguments;

  f[2].name = "mistral";
  f[2].markers = kMistralMarkers;
  f[2].open = "[TOOL_CALLS]";
  f[2].array = true;
  f[2].args_keys = kArguments;

  f[3].name = "llama3-json";
  f[3].markers = kLlama3Markers;
  f[3].prefix = "<|python_tag|>";
  f[3].args_keys = kParameters;

  // Templates that know nothing of tools (SmolLM2, Phi-3/Phi-4, Gemma 2): the tools go
  // into a system message and the reply is one JSON object, which the grammar engine
  // can hold the model to.
  f[4].name = "generic-json";
  f[4].args_keys = kArguments;
  f[4].wrapper_key = "tool_calls";
  f[4].template_renders_tools = false;
  f[4].system_preamble = kGenericPreamble;
  return f;
}

const std::array<ToolCallFormat, 5> kFormats = make_formats();

}  // namespace

std::span<const ToolCallFormat> tool_call_formats() { return kFormats; }

const ToolCallFormat& tool_call_format_for(std::string_view source) {
  for (const ToolCallFormat& f : kFormats)
    for (sv m : f.markers)
      if (source.find(m) != sv::npos) return f;
  return kFormats.back();
}

}  // namespace upg::server
