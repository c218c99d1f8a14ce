#include "server/api-response.h"

#include <gtest/gtest.h>

namespace upg::server {
namespace {

using nlohmann::json;

ResponseHead head(Endpoint e, bool logprobs = false) { return {e, make_response_id(e, 42), 1700000000, "m", logprobs}; }

TEST(ApiResponse, FinishReasons) {
  EXPECT_EQ(finish_reason(StopReason::kEos), "stop");
  EXPECT_EQ(finish_reason(StopReason::kStopString), "stop");
  EXPECT_EQ(finish_reason(StopReason::kLength), "length");
  EXPECT_EQ(finish_reason(StopReason::kContextFull), "length");
  EXPECT_EQ(finish_reason(StopReason::kCallback), "abort");
  EXPECT_FALSE(finish_reason(StopReason::kNone).has_value());
}

TEST(ApiResponse, Ids) {
  EXPECT_EQ(make_response_id(Endpoint::kChat, 255), "chatcmpl-00000000000000ff");
  EXPECT_EQ(make_response_id(Endpoint::kCompletions, 1), "cmpl-0000000000000001");
}

TEST(ApiResponse, ChatCompletion) {
  Choice c;
  c.text = "Paris.";
  c.reason = StopReason::kEos;
  const json r = completion_response(head(Endpoint::kChat), {c}, {10, 3});
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["id"], "chatcmpl-000000000000002a");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "m");
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "Paris.");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["usage"], (json{{"prompt_tokens", 10}, {"completion_tokens", 3}, {"total_tokens", 13}}));
}

TEST(ApiResponse, CompletionWithLogprobs) {
  Choice c;
  c.index = 1;
  c.text = "ab";
  c.reason = StopReason::kLength;
  c.logprobs = {{"a", -0.5f, {{"a", -0.5f}, {"b", -1.5f}}}, {"b", -std::numeric_limits<float>::infinity(), {}}};
  const json r = completion_response(head(Endpoint::kCompletions, true), {c}, {1, 2});
  EXPECT_EQ(r["object"], "text_completion");
  const json& ch = r["choices"][0];
  EXPECT_EQ(ch["index"], 1);
  EXPECT_EQ(ch["text"], "ab");
  EXPECT_EQ(ch["finish_reason"], "length");
  EXPECT_EQ(ch["logprobs"]["tokens"], (json{"a", "b"}));
  EXPECT_EQ(ch["logprobs"]["token_logprobs"][0], -0.5);
  EXPECT_EQ(ch["logprobs"]["token_logprobs"][1], -9999.0);  // JSON has no -inf
  EXPECT_EQ(ch["logprobs"]["top_logprobs"][0]["b"], -1.5);
  EXPECT_EQ(ch["logprobs"]["text_offset"], (json{0, 1}));
}

TEST(ApiResponse, ChatLogprobsCarryBytes) {
  Choice c;
  c.logprobs = {{"\xc3", -0.25f, {{"\xc3", -0.25f}}}};  // half of a UTF-8 character
  const json r = completion_response(head(Endpoint::kChat, true), {c}, {});
  const json& lp = r["choices"][0]["logprobs"]["content"][0];
  EXPECT_EQ(lp["bytes"], (json{0xc3}));
  EXPECT_EQ(lp["top_logprobs"][0]["bytes"], (json{0xc3}));
  // Invalid UTF-8 is replaced in the text, never an exception.
  EXPECT_NE(dump_json(r).find("\xef\xbf\xbd"), std::string::npos);
}

TEST(ApiResponse, StreamChunks) {
  Choice role;
  const json first = stream_chunk(head(Endpoint::kChat), role, true, false);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(first.contains("usage"));
  Choice piece;
  piece.text = "Hi";
  EXPECT_EQ(stream_chunk(head(Endpoint::kChat), piece, false, true)["choices"][0]["delta"], (json{{"content", "Hi"}}));
  EXPECT_TRUE(stream_chunk(head(Endpoint::kChat), piece, false, true)["usage"].is_null());
  Choice end;
  end.reason = StopReason::kLength;
  const json last = stream_chunk(head(Endpoint::kChat), end, false, false);
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  const json u = usage_chunk(head(Endpoint::kChat), {5, 7});
  EXPECT_EQ(u["choices"], json::array());
  EXPECT_EQ(u["usage"]["total_tokens"], 12);
  const json text = stream_chunk(head(Endpoint::kCompletions), piece, false, false);
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["choices"][0]["text"], "Hi");
}

TEST(ApiResponse, ToolCalls) {
  Choice c;
  c.text = "\n";
  c.reason = StopReason::kEos;
  c.tool_calls = {{"call_1_0_0", "get_time", "{}"}, {"call_1_0_1", "get_weather", R"({"city":"Oslo"})"}};
  c.called_tools = true;
  const json r = completion_response(head(Endpoint::kChat), {c}, {});
  const json& m = r["choices"][0]["message"];
  EXPECT_TRUE(m["content"].is_null());  // only calls: no content, as OpenAI sends it
  EXPECT_EQ(r["choices"][0]["finish_reason"], "tool_calls");
  ASSERT_EQ(m["tool_calls"].size(), 2u);
  EXPECT_EQ(m["tool_calls"][1], json::parse(R"({"id": "call_1_0_1", "type": "function",
    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}})"));
  c.reason = StopReason::kLength;  // cut off: the reason says so
  EXPECT_EQ(completion_response(head(Endpoint::kChat), {c}, {})["choices"][0]["finish_reason"], "length");

  // A stream's delta numbers its calls among the choice's.
  Choice d;
  d.tool_calls = {c.tool_calls[1]};
  d.tool_call_base = 1;
  d.called_tools = true;
  const json delta = stream_chunk(head(Endpoint::kChat), d, false, false)["choices"][0]["delta"];
  EXPECT_FALSE(delta.contains("content"));
  EXPECT_EQ(delta["tool_calls"][0]["index"], 1);
  EXPECT_EQ(delta["tool_calls"][0]["function"]["name"], "get_weather");
}

TEST(ApiResponse, ServerSentEvents) {
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
}

TEST(ApiResponse, ModelList) {
  const json l = model_list("m", 5);
  EXPECT_EQ(l["object"], "list");
  EXPECT_EQ(l["data"][0]["id"], "m");
  EXPECT_EQ(l["data"][0]["object"], "model");
}

}  // namespace
}  // namespace upg::server
