// upg batch end to end on the default model: results and error records, the exit status,
// resuming after an unfinished line and after SIGKILL.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/cli-test-helpers.h"

namespace upg::cli_test {
namespace {

using nlohmann::json;

std::string chat_line(int id, const std::string& text, int max_tokens = 8) {
  return json({{"id", id},
               {"messages", json::array({{{"role", "user"}, {"content", text}}})},
               {"max_tokens", max_tokens},
               {"temperature", 0}})
             .dump() +
         "\n";
}

// Every output line parses; the records by id (as text).
std::map<std::string, std::vector<json>> records(const std::string& text) {
  std::map<std::string, std::vector<json>> by_id;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const json r = json::parse(line);
    by_id[r["id"].is_null() ? "line " + r["line"].dump() : r["id"].is_string() ? r["id"].get<std::string>()
                                                                                  : r["id"].dump()]
        .push_back(r);
  }
  return by_id;
}

TEST(CliBatch, ResultsErrorRecordsAndExitStatus) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  TempDir dir;
  const auto in = dir / "in.jsonl", out = dir / "out.jsonl";
  write_file(in, chat_line(1, "What is the capital of France?") + "{broken\n" +
                     R"({"id": "c", "prompt": "Once upon a time", "max_tokens": 6, "temperature": 0})" + "\n\n" +
                     R"({"id": "bad", "prompt": "x", "max_tokens": -3})" + "\n" + chat_line(2, "Name a colour."));
  const ProcessResult r = run_upg({"batch", model, in.string(), "-o", out.string(), "-q"});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // two lines failed
  EXPECT_TRUE(contains(r.err, "2 of 5 lines failed")) << r.err;
  const std::string text = read_file(out);
  EXPECT_EQ(text.back(), '\n');
  auto by_id = records(text);
  ASSERT_EQ(by_id.size(), 5u) << text;
  for (const char* id : {"1", "2", "c"}) {
    ASSERT_EQ(by_id[id].size(), 1u) << id;
    const json& rec = by_id[id][0];
    EXPECT_FALSE(rec["text"].get<std::string>().empty()) << rec;
    EXPECT_GT(rec["prompt_tokens"].get<int>(), 0);
    EXPECT_GT(rec["completion_tokens"].get<int>(), 0);
    EXPECT_TRUE(rec["finish_reason"] == "stop" || rec["finish_reason"] == "length") << rec;
  }
  EXPECT_EQ(by_id["line 2"][0]["line"], 2);
  EXPECT_EQ(by_id["bad"][0]["error"]["param"], "max_tokens");

  // A rerun finds every line done, the failed ones included (their records are there):
  // it writes nothing and succeeds.
  const ProcessResult again = run_upg({"batch", model, in.string(), "-o", out.string(), "-q"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(read_file(out), text);
}

TEST(CliBatch, ResumesAfterAnUnfinishedLineAndAfterSigkill) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  TempDir dir;
  const auto in = dir / "in.jsonl", out = dir / "out.jsonl";
  std::string input;
  for (int i = 0; i < 24; ++i) input += chat_line(i, "Count from " + std::to_string(i) + " to 40.", 24);
  write_file(in, input);
  // Two records a killed run left, and half of a third: the half is cut, the two stay.
  write_file(out, R"({"id": 0, "text": "KEPT", "finish_reason": "stop", "prompt_tokens": 1, "completion_tokens": 1})"
                  "\n"
                  R"({"id": 1, "text": "KEPT", "finish_reason": "stop", "prompt_tokens": 1, "completion_tokens": 1})"
                  "\n"
                  R"({"id": 2, "te)");
  // Killed a few seconds in, wherever it is; then run to the end.
  run_process({"timeout", "-s", "KILL", "4", UPG_CLI_PATH, "batch", model, in.string(), "-o", out.string(), "-q"});
  const ProcessResult r = run_upg({"batch", model, in.string(), "-o", out.string(), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto by_id = records(read_file(out));
  ASSERT_EQ(by_id.size(), 24u);
  for (const auto& [id, recs] : by_id) EXPECT_EQ(recs.size(), 1u) << "id " << id;
  EXPECT_EQ(by_id.at("0")[0]["text"], "KEPT");
  EXPECT_EQ(by_id.at("1")[0]["text"], "KEPT");
  EXPECT_NE(by_id.at("2")[0]["text"], "KEPT");
}

// --json-schema holds every line to the schema except those that choose their own output
// format (response_format, even "text"); a schema it cannot enforce stops the run before
// any line, naming the flag and the keyword's path.
TEST(CliBatch, GrammarFlagsApplyToLinesWithoutTheirOwnFormat) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  TempDir dir;
  const auto in = dir / "in.jsonl", out = dir / "out.jsonl", schema = dir / "schema.json";
  write_file(schema, R"({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]})");
  auto with = [](int id, const char* text, json response_format) {
    json line = json::parse(chat_line(id, text, 24));
    if (!response_format.is_null()) line["response_format"] = std::move(response_format);
    return line.dump() + "\n";
  };
  const json colour = {{"type", "json_schema"},
                       {"json_schema",
                        {{"name", "colour"},
                         {"schema",
                          {{"type", "object"},
                           {"properties", {{"colour", {{"enum", {"red", "blue"}}}}}},
                           {"required", {"colour"}}}}}}};
  write_file(in, with(1, "What is 2 + 2?", nullptr) + with(2, "Name a colour.", colour) +
                     with(3, "Name a colour.", {{"type", "text"}}));
  const ProcessResult r =
      run_upg({"batch", model, in.string(), "-o", out.string(), "-q", "--json-schema", schema.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto by_id = records(read_file(out));
  ASSERT_EQ(by_id.size(), 3u);
  const json one = json::parse(by_id["1"][0]["text"].get<std::string>());
  EXPECT_TRUE(one.is_object() && one.size() == 1 && one["answer"].is_number_integer()) << one;
  const json two = json::parse(by_id["2"][0]["text"].get<std::string>());
  EXPECT_TRUE(two == json({{"colour", "red"}}) || two == json({{"colour", "blue"}})) << two;
  EXPECT_FALSE(by_id["3"][0]["text"].get<std::string>().starts_with("{\"answer\"")) << by_id["3"][0];

  write_file(schema, R"({"type": "array", "uniqueItems": true})");
  const auto out2 = dir / "out2.jsonl";
  const ProcessResult bad =
      run_upg({"batch", model, in.string(), "-o", out2.string(), "-q", "--json-schema", schema.string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.err, "--json-schema: $.uniqueItems: keyword 'uniqueItems' is not supported")) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(out2));
}

}  // namespace
}  // namespace upg::cli_test
