#include "server/api-request.h"

#include <gtest/gtest.h>

namespace upg::server {
namespace {

RequestLimits limits() {
  RequestLimits l;
  l.context_length = 2048;
  l.vocab_size = 1000;
  return l;
}

ApiRequest chat(const std::string& body) { return parse_request(body, Endpoint::kChat, limits()); }
ApiRequest completion(const std::string& body) { return parse_request(body, Endpoint::kCompletions, limits()); }

// The field an ApiError names and its status, for a body that must be refused.
std::pair<int, std::string> refused(const std::string& body, Endpoint e = Endpoint::kChat) {
  try {
    parse_request(body, e, limits());
  } catch (const ApiError& err) {
    return {err.status(), err.param()};
  }
  ADD_FAILURE() << "accepted: " << body;
  return {0, ""};
}

constexpr const char* kMsgs = R"("messages": [{"role": "user", "content": "hi"}])";

TEST(ApiRequest, ChatDefaultsAreOpenAIs) {
  ApiRequest r = chat(std::string("{") + kMsgs + "}");
  EXPECT_EQ(r.endpoint, Endpoint::kChat);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0]["role"], "user");
  EXPECT_EQ(r.messages[0]["content"], "hi");
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(r.logprobs, -1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.seeded);
}

TEST(ApiRequest, ChatFields) {
  ApiRequest r = chat(std::string("{") + kMsgs +
                      R"(, "model": "m", "stream": true, "stream_options": {"include_usage": true},
      "max_completion_tokens": 12, "temperature": 0, "top_p": 0.5, "frequency_penalty": 0.5,
      "presence_penalty": -1, "stop": "END", "seed": 7, "n": 3, "logprobs": true, "top_logprobs": 2,
      "user": "u", "top_k": -1, "min_p": 0.1, "repetition_penalty": 1.1, "ignore_eos": true})");
  EXPECT_EQ(r.model, "m");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, -1.0f);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r.seeded);
  EXPECT_EQ(r.sampling.seed, 7u);
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_EQ(r.user, "u");
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.1f);
  EXPECT_TRUE(r.ignore_eos);
}

TEST(ApiRequest, ContentPartsAreJoinedAndNullsAreAbsent) {
  ApiRequest r = chat(R"({"messages": [{"role": "system", "content": [{"type": "text", "text": "a"},
      {"type": "text", "text": "b"}]}, {"role": "user", "content": "c"}], "max_tokens": null, "seed": null})");
  EXPECT_EQ(r.messages[0]["content"], "ab");
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_FALSE(r.seeded);
}

TEST(ApiRequest, CompletionPromptForms) {
  EXPECT_EQ(completion(R"({"prompt": "x"})").prompts.size(), 1u);
  ApiRequest two = completion(R"({"prompt": ["a", "b"], "logprobs": 3})");
  ASSERT_EQ(two.prompts.size(), 2u);
  EXPECT_EQ(two.prompts[1].text, "b");
  EXPECT_EQ(two.logprobs, 3);
  ApiRequest ids = completion(R"({"prompt": [1, 2, 3]})");
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_TRUE(ids.prompts[0].is_tokens);
  EXPECT_EQ(ids.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  ApiRequest lists = completion(R"({"prompt": [[1], [2, 3]]})");
  ASSERT_EQ(lists.prompts.size(), 2u);
  EXPECT_EQ(lists.prompts[1].tokens, (std::vector<int32_t>{2, 3}));
}

TEST(ApiRequest, NegativeSeedKeepsItsBits) {
  EXPECT_EQ(chat(std::string("{") + kMsgs + R"(, "seed": -2})").sampling.seed, uint64_t(-2));
}

TEST(ApiRequest, BadBodiesNameTheirField) {
  const std::string m = std::string("{") + kMsgs + ", ";
  EXPECT_EQ(refused("{"), std::make_pair(400, std::string()));
  EXPECT_EQ(refused("[1]"), std::make_pair(400, std::string()));
  EXPECT_EQ(refused("{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\"}]}"), std::make_pair(400, std::string()));
  EXPECT_EQ(refused("{}"), std::make_pair(400, std::string("messages")));
  EXPECT_EQ(refused(R"({"messages": []})"), std::make_pair(400, std::string("messages")));
  EXPECT_EQ(refused(R"({"messages": "hi"})"), std::make_pair(400, std::string("messages")));
  EXPECT_EQ(refused(R"({"messages": [{"role": "robot", "content": "x"}]})").second, "messages[0].role");
  EXPECT_EQ(refused(R"({"messages": [{"role": "user"}]})").second, "messages[0].content");
  EXPECT_EQ(refused(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})").second,
            "messages[0].content");
  EXPECT_EQ(refused(m + R"("max_tokens": -1})").second, "max_tokens");
  EXPECT_EQ(refused(m + R"("max_tokens": 0})").second, "max_tokens");
  EXPECT_EQ(refused(m + R"("max_tokens": 1000000000})").second, "max_tokens");
  EXPECT_EQ(refused(m + R"("max_tokens": "8"})").second, "max_tokens");
  EXPECT_EQ(refused(m + R"("max_tokens": 8.5})").second, "max_tokens");
  EXPECT_EQ(refused(m + R"("temperature": "hot"})").second, "temperature");
  EXPECT_EQ(refused(m + R"("temperature": 3})").second, "temperature");
  EXPECT_EQ(refused(m + R"("top_p": 0})").second, "top_p");
  EXPECT_EQ(refused(m + R"("n": 0})").second, "n");
  EXPECT_EQ(refused(m + R"("n": 1000})").second, "n");
  EXPECT_EQ(refused(m + R"("stop": 5})").second, "stop");
  EXPECT_EQ(refused(m + R"("stop": [""]})").second, "stop");
  EXPECT_EQ(refused(m + R"("stream": "yes"})").second, "stream");
  EXPECT_EQ(refused(m + R"("top_logprobs": 2})").second, "top_logprobs");
  EXPECT_EQ(refused(m + R"("logprobs": true, "top_logprobs": 99})").second, "top_logprobs");
  EXPECT_EQ(refused(m + R"("max_token": 5})").second, "max_token");
  EXPECT_EQ(refused(m + R"("stream_options": {"x": 1}})").second, "stream_options.x");
  EXPECT_EQ(refused(m + R"("tools": [{"type": "function"}]})").second, "tools[0].function");
  EXPECT_EQ(refused(m + R"("logit_bias": {"5": 100}})").second, "logit_bias");
  EXPECT_EQ(refused(m + R"("seed": 18446744073709551615})").second, "seed");
  EXPECT_EQ(refused(m + R"("model": 5})").second, "model");
  EXPECT_EQ(refused(R"({"prompt": []})", Endpoint::kCompletions).second, "prompt");
  EXPECT_EQ(refused(R"({"prompt": [5000]})", Endpoint::kCompletions).second, "prompt");
  EXPECT_EQ(refused(R"({"prompt": [-1]})", Endpoint::kCompletions).second, "prompt");
  EXPECT_EQ(refused(R"({"prompt": [{}]})", Endpoint::kCompletions).second, "prompt");
  EXPECT_EQ(refused(R"({"prompt": "x", "echo": true})", Endpoint::kCompletions).second, "echo");
  EXPECT_EQ(refused(R"({"prompt": "x", "messages": []})", Endpoint::kCompletions).second, "messages");
  EXPECT_EQ(refused(R"({"prompt": "x", "logprobs": 50})", Endpoint::kCompletions).second, "logprobs");
}

TEST(ApiRequest, DeepNestingIsRefusedNotRecursed) {
  std::string deep(100000, '[');
  EXPECT_EQ(refused(std::string("{\"messages\": ") + deep + "}").first, 400);
}

TEST(ApiRequest, LibraryParamsMapToFields) {
  EXPECT_EQ(field_for_param("repeat_penalty", Endpoint::kChat), "repetition_penalty");
  EXPECT_EQ(field_for_param("prompt", Endpoint::kChat), "messages");
  EXPECT_EQ(field_for_param("prompt", Endpoint::kCompletions), "prompt");
  EXPECT_EQ(field_for_param("max_new_tokens", Endpoint::kCompletions), "max_tokens");
  EXPECT_EQ(field_for_param("top_k", Endpoint::kChat), "top_k");
}

TEST(ApiError, BodyIsOpenAIs) {
  const nlohmann::json b = ApiError(400, "n: too large", "n").body();
  EXPECT_EQ(b["error"]["message"], "n: too large");
  EXPECT_EQ(b["error"]["type"], "invalid_request_error");
  EXPECT_EQ(b["error"]["param"], "n");
  EXPECT_TRUE(b["error"]["code"].is_null());
  EXPECT_TRUE(ApiError(500, "x", {}, "server_error").body()["error"]["param"].is_null());
}

TEST(ApiRequest, StructuredOutput) {
  const std::string m = std::string("{") + kMsgs + ", ";
  ApiRequest r = chat(m + R"("response_format": {"type": "json_object"}})");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::kAnyJson);
  r = chat(m + R"("response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}})");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::kJsonSchema);
  EXPECT_TRUE(r.grammar->strict);
  EXPECT_EQ(nlohmann::json::parse(r.grammar->text)["properties"]["a"]["type"], "integer");
  EXPECT_EQ(r.grammar_field, "response_format.json_schema.schema");
  EXPECT_FALSE(chat(m + R"("response_format": {"type": "text"}})").grammar);
  r = chat(m + R"("grammar": "root ::= \"yes\" | \"no\""})");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar->kind, GrammarKind::kGbnf);
  r = completion(R"({"prompt": "x", "json_schema": {"type": "string"}})");
  ASSERT_TRUE(r.grammar);
  EXPECT_EQ(r.grammar_field, "json_schema");

  EXPECT_EQ(refused(m + R"("response_format": {"type": "xml"}})").second, "response_format.type");
  EXPECT_EQ(refused(m + R"("response_format": {"type": "json_schema"}})").second, "response_format.json_schema");
  EXPECT_EQ(refused(m + R"("response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})").second,
            "response_format.json_schema.name");
  EXPECT_EQ(refused(m + R"("response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 3}}})").second,
            "response_format.json_schema.schema");
  EXPECT_EQ(refused(m + R"("response_format": {"type": "json_object"}, "grammar": "root ::= \"a\""})").second, "grammar");
  EXPECT_EQ(refused(m + R"("grammar": 5})").second, "grammar");
  EXPECT_EQ(refused(m + R"("response_format": {"type": "json_object"}, "tools": [{"type": "function",
    "function": {"name": "f"}}]})").second, "response_format");
}

TEST(ApiRequest, ResponseFormatGivesTheGrammar) {
  EXPECT_FALSE(chat(std::string("{") + kMsgs + R"(, "response_format": {"type": "text"}})").grammar);
  const auto j = chat(std::string("{") + kMsgs + R"(, "response_format": {"type": "json_object"}})").grammar;
  ASSERT_TRUE(j);
  EXPECT_EQ(j->kind, GrammarKind::kAnyJson);
  const auto s = chat(std::string("{") + kMsgs +
                      R"(, "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
                         "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}})")
                     .grammar;
  ASSERT_TRUE(s);
  EXPECT_EQ(s->kind, GrammarKind::kJsonSchema);
  EXPECT_EQ(nlohmann::json::parse(s->text), nlohmann::json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}}})"));
  const auto bad = [](const char* rf) { return refused(std::string("{") + kMsgs + R"(, "response_format": )" + rf + "}"); };
  EXPECT_EQ(bad(R"({"type": "xml"})"), std::make_pair(400, std::string("response_format.type")));
  EXPECT_EQ(bad(R"({"type": "json_schema"})"), std::make_pair(400, std::string("response_format.json_schema")));
  EXPECT_EQ(bad(R"({"type": "json_schema", "json_schema": {"name": "x", "schema": 3}})"),
            std::make_pair(400, std::string("response_format.json_schema.schema")));
  EXPECT_EQ(bad(R"({"type": "json_object", "extra": 1})"), std::make_pair(400, std::string("response_format.extra")));
}

}  // namespace
}  // namespace upg::server
