#include "server/batch-file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "upg/core/error.h"

namespace upg::server {
namespace {

using nlohmann::json;

RequestLimits limits() {
  RequestLimits l;
  l.context_length = 2048;
  l.vocab_size = 100;
  return l;
}

TEST(BatchFile, ChatAndCompletionLines) {
  BatchLine chat = parse_batch_line(R"({"id": "a", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})",
                                    limits());
  EXPECT_EQ(chat.key, "a");
  EXPECT_EQ(chat.request.endpoint, Endpoint::kChat);
  EXPECT_EQ(chat.request.max_tokens, 4);
  BatchLine comp = parse_batch_line(R"({"id": 7, "prompt": "Once", "temperature": 0})", limits());
  EXPECT_EQ(comp.key, "7");
  EXPECT_EQ(comp.id, json(7));
  EXPECT_EQ(comp.request.endpoint, Endpoint::kCompletions);
  EXPECT_EQ(comp.request.sampling.temperature, 0.0f);
}

TEST(BatchFile, BadLinesNameTheProblemAndKeepTheId) {
  auto error_of = [](const std::string& line) -> std::string {
    try {
      parse_batch_line(line, limits());
    } catch (const BatchLineError& e) {
      return "id " + e.id.dump() + ": " + e.what();
    } catch (const ApiError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(error_of("{not json").find("line"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt": "x"})").find("id"), std::string::npos);
  EXPECT_NE(error_of(R"({"id": 1.5, "prompt": "x"})").find("string or an integer"), std::string::npos);
  EXPECT_EQ(error_of(R"({"id": "q", "prompt": "x", "messages": []})"),
            "id \"q\": a line needs either \"messages\" or \"prompt\"");
  EXPECT_EQ(error_of(R"({"id": "s", "prompt": "x", "stream": true})"), "id \"s\": stream: not available in a batch");
  EXPECT_EQ(error_of(R"({"id": "u", "prompt": "x", "max_token": 3})"), "id \"u\": max_token: unknown field");
  EXPECT_NE(error_of(R"({"id": "t", "prompt": "x", "temperature": "hot"})").find("temperature"), std::string::npos);
}

TEST(BatchFile, Records) {
  const json chat = {{"choices", json::array({{{"index", 0},
                                              {"message", {{"role", "assistant"}, {"content", "Hello"}}},
                                              {"finish_reason", "stop"}}})},
                     {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 2}}}};
  EXPECT_EQ(result_record("a", chat).dump(),
            R"({"id":"a","text":"Hello","finish_reason":"stop","prompt_tokens":5,"completion_tokens":2})");
  const json two = {{"choices", json::array({{{"text", "x"}, {"finish_reason", "length"}},
                                             {{"text", "y"}, {"finish_reason", "stop"}}})},
                    {"usage", {{"prompt_tokens", 1}, {"completion_tokens", 3}}}};
  const Record r = result_record(3, two);
  EXPECT_EQ(r["text"], "x");
  EXPECT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][1]["text"], "y");
  const Record e = error_record(nullptr, 12, bad_field("max_tokens", "must be an integer"));
  EXPECT_TRUE(e["id"].is_null());
  EXPECT_EQ(e["line"], 12);
  EXPECT_EQ(e["error"]["param"], "max_tokens");
}

std::string temp_path() {
  return (std::filesystem::temp_directory_path() / ("upg-batch-" + std::to_string(::getpid()) + ".jsonl")).string();
}

TEST(BatchFile, ResumeCutsAnUnfinishedLineAndListsWhatIsDone) {
  const std::string path = temp_path();
  EXPECT_TRUE(resume_batch_output(path).ids.empty());  // no file yet
  {
    BatchWriter w(path);
    w.write(result_record("a", {{"choices", json::array({{{"text", "t"}, {"finish_reason", "stop"}}})},
                                {"usage", {{"prompt_tokens", 1}, {"completion_tokens", 1}}}}));
    w.write(error_record(7, 2, bad_field("n", "too large")));
    w.write(error_record(nullptr, 3, ApiError(400, "line: not JSON")));
  }
  { std::ofstream(path, std::ios::app) << R"({"id": "half", "te)"; }
  const BatchDone done = resume_batch_output(path);
  EXPECT_EQ(done.ids, (std::unordered_set<std::string>{"a", "7"}));
  EXPECT_EQ(done.lines, (std::unordered_set<int64_t>{3}));
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find("half"), std::string::npos);

  { std::ofstream(path, std::ios::app) << "not a record\n"; }
  EXPECT_THROW(resume_batch_output(path), Error);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace upg::server
