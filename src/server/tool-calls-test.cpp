#include "server/tool-calls.h"

#include <gtest/gtest.h>

#include "server/api-error.h"
#include "upg/core/file-text.h"
#include "core/test-paths.h"

namespace upg::server {
namespace {

using json = nlohmann::ordered_json;

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
])");

ToolRequest tools(const json& extra = json::object()) {
  json body = {{"tools", kTools}};
  for (const auto& [k, v] : extra.items()) body[k] = v;
  return parse_tool_request(body);
}

std::string refused_param(const json& body) {
  try {
    parse_tool_request(body);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    return e.param();
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return {};
}

const ToolCallFormat& format(std::string_view name) {
  for (const ToolCallFormat& f : tool_call_formats())
    if (f.name == name) return f;
  throw std::runtime_error("no format " + std::string(name));
}

TEST(ToolRequest, ParsesToolsAndChoice) {
  ToolRequest t = tools();
  EXPECT_EQ(t.choice, ToolChoice::kAuto);
  EXPECT_EQ(t.names, (std::vector<std::string>{"get_weather", "get_time"}));
  EXPECT_TRUE(t.parallel);
  t = tools({{"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}},
             {"parallel_tool_calls", false}});
  EXPECT_EQ(t.choice, ToolChoice::kNamed);
  EXPECT_EQ(t.named, "get_time");
  EXPECT_FALSE(t.parallel);
  EXPECT_EQ(tools({{"tool_choice", "none"}}).choice, ToolChoice::kNone);
  EXPECT_EQ(tools({{"tool_choice", "required"}}).choice, ToolChoice::kRequired);
  EXPECT_FALSE(parse_tool_request(json::object()).active());
  EXPECT_FALSE(parse_tool_request({{"tool_choice", "auto"}}).active());  // auto with no tools: nothing to call
}

TEST(ToolRequest, RefusesWhatIsWrongNamingThePath) {
  EXPECT_EQ(refused_param({{"tools", kTools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}}),
            "tool_choice.function.name");
  EXPECT_EQ(refused_param({{"tools", kTools}, {"tool_choice", "sometimes"}}), "tool_choice");
  EXPECT_EQ(refused_param({{"tool_choice", "required"}}), "tool_choice");
  json dup = kTools;
  dup[1]["function"]["name"] = "get_weather";
  EXPECT_EQ(refused_param({{"tools", dup}}), "tools[1].function.name");
  json bad = kTools;
  bad[0]["function"]["name"] = "get weather!";
  EXPECT_EQ(refused_param({{"tools", bad}}), "tools[0].function.name");
  bad = kTools;
  bad[1]["function"]["parameters"] = "object";
  EXPECT_EQ(refused_param({{"tools", bad}}), "tools[1].function.parameters");
  bad = kTools;
  bad[0]["type"] = "retrieval";
  EXPECT_EQ(refused_param({{"tools", bad}}), "tools[0].type");
  EXPECT_EQ(refused_param({{"tools", "get_weather"}}), "tools");
  EXPECT_EQ(refused_param({{"tools", kTools}, {"parallel_tool_calls", "yes"}}), "parallel_tool_calls");
}

TEST(ToolRequest, MessageToolCallsBecomeObjects) {
  const json calls = parse_message_tool_calls(
      json::parse(R"([{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}])"),
      "messages[1].tool_calls");
  EXPECT_EQ(calls[0]["function"]["arguments"], json({{"a", 1}}));
  EXPECT_EQ(calls[0]["id"], "c1");
  try {
    parse_message_tool_calls(json::parse(R"([{"function": {"name": "f", "arguments": "not json"}}])"),
                             "messages[1].tool_calls");
    ADD_FAILURE();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "messages[1].tool_calls[0].function.arguments");
  }
}

TEST(ToolCallFormats, RecognisedFromTheModelsTemplates) {
  auto of = [](const std::string& file) {
    return std::string(
        tool_call_format_for(read_file_text(test::fixture("chat-templates/" + file), "template")).name);
  };
  EXPECT_EQ(of("Qwen-Qwen2.5-7B-Instruct.jinja"), "hermes");
  EXPECT_EQ(of("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja"), "hermes");
  EXPECT_EQ(of("Qwen-Qwen3-0.6B.jinja"), "hermes");
  EXPECT_EQ(of("Mistral-Small-3.2-24B-Instruct-2506.jinja"), "mistral-args");
  EXPECT_EQ(of("mistralai-Mistral-Nemo-Instruct-2407.jinja"), "mistral");
  EXPECT_EQ(of("meta-llama-Llama-3.1-8B-Instruct.jinja"), "llama3-json");
  EXPECT_EQ(of("meta-llama-Llama-3.2-3B-Instruct.jinja"), "llama3-json");
  EXPECT_EQ(of("HuggingFaceTB-SmolLM2-135M-Instruct.jinja"), "generic-json");
  EXPECT_EQ(of("microsoft-phi-4.jinja"), "generic-json");
  EXPECT_EQ(std::string(tool_call_format_for("").name), "generic-json");
}

struct Case {
  const char* format;
  std::string reply;
  std::string content;
  std::vector<std::pair<std::string, json>> calls;  // name, arguments
};

std::vector<Case> cases() {
  return {
      {"hermes",
       "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
       "Let me look.\n",
       {{"get_weather", {{"city", "Paris"}}}}},
      {"hermes",
       "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a</tool\"}}</tool_call>\n<tool_call>"
       "{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
       "\n",
       {{"get_weather", {{"city", "a</tool"}}}, {"get_time", json::object()}}},
      {"hermes", "No tools needed: < tool_call > is just text.", "No tools needed: < tool_call > is just text.", {}},
      // A call naming no given tool, and one cut off by max_tokens, stay the text they were.
      {"hermes", "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
       "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>", {}},
      {"hermes", "Sure <tool_call>{\"name\": \"get_weather\", \"argu", "Sure <tool_call>{\"name\": \"get_weather\", \"argu",
       {}},
      {"mistral",
       "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}, {\"name\": \"get_time\", "
       "\"arguments\": {}}]",
       "",
       {{"get_weather", {{"city", "Rome"}}}, {"get_time", json::object()}}},
      {"mistral-args", "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"}[TOOL_CALLS]get_time[ARGS]{}", "",
       {{"get_weather", {{"city", "Oslo"}}}, {"get_time", json::object()}}},
      {"llama3-json", "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Lima\"}}", "",
       {{"get_weather", {{"city", "Lima"}}}}},
      {"llama3-json", "  {\"name\": \"get_time\", \"parameters\": {}}", "  ", {{"get_time", json::object()}}},
      // Text, then a call (what the grammar's triggered tags allow); a call naming no
      // given tool, or with arguments that are no object, stays text.
      {"llama3-json", "It is sunny {\"name\": \"get_time\", \"parameters\": {}}", "It is sunny ",
       {{"get_time", json::object()}}},
      {"llama3-json", "It is {\"name\": \"ls\", \"parameters\": {}} {\"name\": \"get_time\", \"parameters\": 5}",
       "It is {\"name\": \"ls\", \"parameters\": {}} {\"name\": \"get_time\", \"parameters\": 5}", {}},
      {"generic-json", "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Kyiv\"}}]}", "",
       {{"get_weather", {{"city", "Kyiv"}}}}},
      {"generic-json", "{\"response\": \"Hello!\"}", "Hello!", {}},
      {"generic-json", "{\"tool_calls\": []}", "{\"tool_calls\": []}", {}},
      {"generic-json", "Plain answer.", "Plain answer.", {}},
  };
}

void expect_output(const Case& c, const ToolCallParser::Output& o, const std::string& how) {
  EXPECT_EQ(o.content, c.content) << c.format << " " << how << ": " << c.reply;
  ASSERT_EQ(o.calls.size(), c.calls.size()) << c.format << " " << how << ": " << c.reply;
  for (size_t i = 0; i < o.calls.size(); ++i) {
    EXPECT_EQ(o.calls[i].name, c.calls[i].first);
    EXPECT_EQ(json::parse(o.calls[i].arguments), c.calls[i].second);
    EXPECT_EQ(o.calls[i].id, "call_x_" + std::to_string(i));
  }
}

TEST(ToolCallParser, SplitsRepliesOfEveryFormat) {
  const ToolRequest t = tools();
  for (const Case& c : cases()) expect_output(c, parse_tool_calls(c.reply, format(c.format), t, "call_x"), "whole");
}

TEST(ToolCallParser, StreamedInAnyPiecesGivesTheWholeReplysResult) {
  const ToolRequest t = tools();
  for (const Case& c : cases())
    for (size_t piece = 1; piece <= 9; ++piece) {
      ToolCallParser p(format(c.format), t, "call_x");
      ToolCallParser::Output all;
      auto add = [&](ToolCallParser::Output o) {
        all.content += o.content;
        for (ToolCall& k : o.calls) all.calls.push_back(std::move(k));
      };
      for (size_t at = 0; at < c.reply.size(); at += piece) add(p.feed(std::string_view(c.reply).substr(at, piece)));
      add(p.feed({}, true));
      expect_output(c, all, "in pieces of " + std::to_string(piece));
    }
}

// A long call streamed a byte at a time: each piece is read once (a parser that searched
// the call's text again on every piece would take minutes here, past the test's timeout),
// and the result is the whole reply's.
TEST(ToolCallParser, LongCallStreamedByteByByteEqualsItWhole) {
  const ToolRequest t = tools();
  std::string city;
  while (city.size() < (128u << 10)) city += "Par\\\"is}]{[ </tool ";  // escapes, brackets, a near-marker
  const std::string args = json{{"city", city}}.dump();
  const std::string call = "{\"name\": \"get_weather\", ";
  const std::vector<std::pair<const char*, std::string>> replies = {
      {"hermes", "<tool_call>" + call + "\"arguments\": " + args + "}</tool_call>"},
      {"mistral", "[TOOL_CALLS][" + call + "\"arguments\": " + args + "}]"},
      {"mistral-args", "[TOOL_CALLS]get_weather[ARGS]" + args},
      {"llama3-json", call + "\"parameters\": " + args + "}"},
      {"generic-json", "{\"tool_calls\": [" + call + "\"arguments\": " + args + "}]}"},
  };
  for (const auto& [name, reply] : replies) {
    const ToolCallParser::Output whole = parse_tool_calls(reply, format(name), t, "id");
    ASSERT_EQ(whole.calls.size(), 1u) << name;
    EXPECT_EQ(json::parse(whole.calls[0].arguments)["city"], city) << name;
    EXPECT_EQ(whole.content, "") << name;
    ToolCallParser p(format(name), t, "id");
    ToolCallParser::Output streamed;
    for (size_t at = 0; at < reply.size(); ++at) {
      ToolCallParser::Output o = p.feed(std::string_view(reply).substr(at, 1), at + 1 == reply.size());
      streamed.content += o.content;
      for (ToolCall& c : o.calls) streamed.calls.push_back(std::move(c));
    }
    EXPECT_EQ(streamed.content, whole.content) << name;
    ASSERT_EQ(streamed.calls.size(), 1u) << name;
    EXPECT_EQ(streamed.calls[0].arguments, whole.calls[0].arguments) << name;
    EXPECT_EQ(streamed.calls[0].id, whole.calls[0].id) << name;
  }
}

TEST(ToolCallParser, ContentBeforeACallIsNotHeldBack) {
  const ToolRequest t = tools();
  ToolCallParser p(format("hermes"), t, "id");
  EXPECT_EQ(p.feed("Checking the weather <tool").content, "Checking the weather ");
  EXPECT_EQ(p.feed("_call>{\"name\": \"get_time\", \"arguments\": {}}").content, "");
  const ToolCallParser::Output o = p.feed("</tool_call>");
  ASSERT_EQ(o.calls.size(), 1u);  // the call streams as soon as it closes
  EXPECT_EQ(o.calls[0].name, "get_time");
}

TEST(ToolCallParser, OneCallWhenParallelCallsAreOff) {
  const ToolRequest t = tools({{"parallel_tool_calls", false}});
  const auto o = parse_tool_calls(cases()[1].reply, format("hermes"), t, "id");
  ASSERT_EQ(o.calls.size(), 1u);
  EXPECT_EQ(o.calls[0].name, "get_weather");
}

// JSON nested past the server's limit (upg/core/json.h), in a request's arguments string
// or in a reply's call, is refused or left as text: copied or dumped, it overflowed the
// stack (seen with fuzz/tool-call-fuzz.cpp on hand-made inputs).
TEST(ToolCallParser, DeeplyNestedArgumentsAreNoCall) {
  const std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  try {
    parse_message_tool_calls(json::array({{{"function", {{"name", "f"}, {"arguments", deep}}}}}),
                             "messages[1].tool_calls");
    ADD_FAILURE();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "messages[1].tool_calls[0].function.arguments");
  }
  const ToolRequest t = tools();
  for (const std::string& reply :
       {"<tool_call>{\"name\": \"get_time\", \"arguments\": " + deep + "}</tool_call>",
        "<tool_call>{\"name\": \"get_time\", \"arguments\": " + json(deep).dump() + "}</tool_call>"}) {
    const auto o = parse_tool_calls(reply, format("hermes"), t, "id");
    EXPECT_TRUE(o.calls.empty());
    EXPECT_EQ(o.content, reply);
  }
}

TEST(ToolPrompt, GenericFormatDescribesToolsInTheSystemMessage) {
  const ToolRequest t = tools();
  const json messages = json::parse(R"([{"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "21 C"}])");
  const auto out = prompt_messages(messages, t, format("generic-json"));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0]["role"], "system");
  const std::string sys = out[0]["content"];
  EXPECT_NE(sys.find("\"name\":\"get_weather\""), std::string::npos) << sys;
  EXPECT_NE(sys.find("\"name\":\"get_time\""), std::string::npos);
  EXPECT_EQ(out[2]["content"], R"({"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]})");
  EXPECT_FALSE(out[2].contains("tool_calls"));
  EXPECT_TRUE(prompt_tools(t, format("generic-json")).is_null());
  // A template that renders tools gets them and the messages as they are.
  EXPECT_EQ(prompt_tools(t, format("hermes")).size(), 2u);
  EXPECT_EQ(prompt_messages(messages, t, format("hermes"))[1]["tool_calls"][0]["function"]["name"], "get_weather");
  // No active tools: no preamble.
  EXPECT_EQ(prompt_messages(messages, tools({{"tool_choice", "none"}}), format("generic-json")).size(), 3u);
}

TEST(ToolStructuralTag, WhatItAllowsIsWhatTheParserReads) {
  const ToolRequest t = tools();
  for (const ToolCallFormat& f : tool_call_formats()) {
    const auto tag = tool_call_structural_tag(f, t);
    ASSERT_EQ(tag["type"], "structural_tag");
    const auto& fmt = tag["format"];
    EXPECT_EQ(fmt["type"], "triggered_tags");
    EXPECT_FALSE(fmt["at_least_one"].get<bool>());  // auto: text, or calls
    EXPECT_FALSE(fmt["stop_after_first"].get<bool>());
    ASSERT_EQ(fmt["tags"].size(), 2u);
    const std::string trigger = fmt["triggers"][0];
    for (const auto& tag_item : fmt["tags"]) {
      const std::string begin = tag_item["begin"], end = tag_item["end"];
      EXPECT_EQ(begin.rfind(trigger, 0), 0u) << f.name << ": a tag begins with its trigger";
      // A call as the grammar would let the model write it, read back by the parser.
      const std::string reply = "Let me check. " + begin + R"({"city": "Paris"})" + end;
      const auto o = parse_tool_calls(reply, f, t, "id");
      ASSERT_EQ(o.calls.size(), 1u) << f.name << ": " << reply;
      EXPECT_EQ(o.content, "Let me check. ") << f.name;
    }
  }
  // A reply that is the call alone:
  for (const char* name : {"llama3-json", "generic-json"}) {
    const auto tag = tool_call_structural_tag(format(name), t);
    const std::string reply = tag["format"]["tags"][0]["begin"].get<std::string>() + R"({"city": "Rome"})" +
                              tag["format"]["tags"][0]["end"].get<std::string>();
    const auto o = parse_tool_calls(reply, format(name), t, "id");
    ASSERT_EQ(o.calls.size(), 1u) << reply;
    EXPECT_EQ(o.calls[0].name, "get_weather");
    EXPECT_EQ(json::parse(o.calls[0].arguments), json({{"city", "Rome"}}));
    EXPECT_EQ(o.content, "");
  }
  // A named function: that tool alone, and exactly one call; required: at least one.
  auto named = tool_call_structural_tag(format("hermes"),
                                        tools({{"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}}));
  ASSERT_EQ(named["format"]["tags"].size(), 1u);
  EXPECT_NE(named["format"]["tags"][0]["begin"].get<std::string>().find("get_time"), std::string::npos);
  EXPECT_EQ(named["format"]["type"], "tags_with_separator");  // no text before the call
  EXPECT_TRUE(named["format"]["at_least_one"].get<bool>());
  EXPECT_TRUE(named["format"]["stop_after_first"].get<bool>());
  auto required = tool_call_structural_tag(format("hermes"), tools({{"tool_choice", "required"}}));
  EXPECT_EQ(required["format"]["type"], "tags_with_separator");
  EXPECT_TRUE(required["format"]["at_least_one"].get<bool>());
  EXPECT_FALSE(required["format"]["stop_after_first"].get<bool>());
  EXPECT_TRUE(tool_call_structural_tag(format("hermes"), tools({{"parallel_tool_calls", false}}))["format"]
                  ["stop_after_first"].get<bool>());
  EXPECT_TRUE(tool_call_structural_tag(format("hermes"), tools({{"tool_choice", "none"}})).is_null());
  // The tool's own schema is what the arguments are held to.
  EXPECT_EQ(required["format"]["tags"][0]["content"]["json_schema"]["required"][0], "city");
}

TEST(JsonValueEnd, FindsTheEndOfTheFirstValue) {
  EXPECT_EQ(json_value_end(R"( {"a": "}"} tail)"), 11u);
  EXPECT_EQ(json_value_end(R"([1, [2], "\"]"]x)"), 15u);
  EXPECT_EQ(json_value_end(R"({"a": 1)"), std::string_view::npos);
  EXPECT_EQ(json_value_end(R"("abc)"), std::string_view::npos);
  EXPECT_EQ(json_value_end("   "), std::string_view::npos);
  EXPECT_EQ(json_value_end(" 12, 3"), 3u);
  EXPECT_EQ(json_value_end(" 12"), std::string_view::npos);  // the number may go on
  EXPECT_EQ(json_value_end("\"a\\\"b\" x"), 6u);
}

// Fed the text as it grows, in every split, the scanner finds what a whole scan finds.
TEST(JsonValueEnd, IncrementalScanEqualsAWholeScan) {
  for (const std::string text : {R"( {"a": "}\\"} tail)", R"([1, [2], "\"]"]x)", R"("ab\"c" d)", " 12 ", R"({"a": 1)",
                                 R"({"s": "\\\""})"}) {
    const size_t whole = json_value_end(text);
    for (size_t piece = 1; piece <= text.size(); ++piece) {
      JsonValueEnd scanner;
      size_t got = std::string_view::npos;
      for (size_t n = piece; got == std::string_view::npos; n = std::min(n + piece, text.size())) {
        got = scanner.scan(std::string_view(text).substr(0, n));
        if (n == text.size()) break;
      }
      EXPECT_EQ(got, whole) << text << " in pieces of " << piece;
    }
  }
}

}  // namespace
}  // namespace upg::server
