// Every committed chat template rendered over the conversations of
// tests/fixtures/chat-template-goldens.json, compared byte for byte with what Python's
// jinja2 rendered in transformers' environment (scripts/fixtures/
// make-chat-template-goldens.py). Conversations a template refuses must fail here too,
// with raise_exception's message.
#include <gtest/gtest.h>

#include <ctime>
#include <optional>

#include "core/test-paths.h"
#include "upg/core/error.h"
#include "upg/core/file-text.h"
#include "upg/core/json.h"
#include "upg/jinja/template.h"

namespace upg::jinja {
namespace {

using json = nlohmann::ordered_json;

// The date the golden script pins strftime_now to (its PINNED_NOW).
std::tm pinned_now(const std::string& iso) {
  std::tm tm{};
  EXPECT_EQ(std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                        &tm.tm_min, &tm.tm_sec),
            6);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::tm copy = tm;
  (void)timegm(&copy);  // fills in the weekday and day of the year that %a and %j print
  tm.tm_wday = copy.tm_wday;
  tm.tm_yday = copy.tm_yday;
  return tm;
}

TEST(ChatTemplateGolden, MatchesJinja2) {
  const json goldens = parse_json<json>(
      read_file_text(test::fixture("chat-template-goldens.json"), "goldens"), "chat-template-goldens.json");
  RenderOptions options;
  options.now = pinned_now(goldens["pinned_now"].get<std::string>());
  int compared = 0, refused = 0;
  for (const json& t : goldens["templates"]) {
    const std::string file = t["file"].get<std::string>();
    const std::string source = read_file_text(test::fixture("chat-templates/" + file), file);
    std::optional<Template> parsed;
    try {
      parsed.emplace(source, file);
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    const Template& tmpl = *parsed;
    for (const json& c : t["cases"]) {
      const json& conv = goldens["conversations"][c["conversation"].get<std::string>()];
      json context = {{"messages", conv["messages"]},
                      {"tools", conv.contains("tools") ? conv["tools"] : json(nullptr)},
                      {"documents", nullptr},
                      {"add_generation_prompt", c["add_generation_prompt"]},
                      {"bos_token", t["bos_token"]},
                      {"eos_token", t["eos_token"]}};
      const std::string label = file + " / " + c["conversation"].get<std::string>() +
                                (c["add_generation_prompt"].get<bool>() ? " + generation prompt" : "");
      if (c.contains("output")) {
        std::string got;
        try {
          got = tmpl.render(context, options);
        } catch (const Error& e) {
          ADD_FAILURE() << label << ": " << e.what();
          continue;
        }
        EXPECT_EQ(got, c["output"].get<std::string>()) << label;
        ++compared;
      } else {
        const std::string want = c["error"].get<std::string>();
        try {
          (void)tmpl.render(context, options);
          ADD_FAILURE() << label << ": rendered, but jinja2 failed with " << want;
        } catch (const Error& e) {
          const std::string what = e.what();
          EXPECT_EQ(what.rfind(file + ":", 0), 0u) << what;
          if (c.value("raised", false)) {
            EXPECT_NE(what.find("raise_exception: " + want), std::string::npos) << label << ": " << what;
          }
        }
        ++refused;
      }
    }
  }
  EXPECT_GE(compared, 100);
  EXPECT_GE(refused, 6);
}

}  // namespace
}  // namespace upg::jinja
