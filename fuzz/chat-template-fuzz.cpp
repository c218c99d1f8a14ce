// The Jinja interpreter as chat templates use it: parse a template, render it over a
// conversation. Input: a flags byte (bit 0 add_generation_prompt, bit 1 a tools list),
// then the template source, then NUL-separated role, content, role, content, ...
// Checked beyond "no crash": a render stays within the output limit, and rendering is
// deterministic (the same text twice).
#include <cstdint>

#include "fuzz-util.h"
#include "upg/jinja/template.h"

using namespace upg;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const auto parts = upg::fuzz::split_nul(upg::fuzz::as_text(data + 1, size - 1));
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (size_t i = 1; i + 1 < parts.size(); i += 2)
    messages.push_back({{"role", std::string(parts[i])}, {"content", std::string(parts[i + 1])}});
  nlohmann::ordered_json tools = nullptr;
  if (flags & 2)
    tools = nlohmann::ordered_json::parse(
        R"([{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}])");
  const nlohmann::ordered_json context = {{"messages", messages}, {"tools", tools}, {"add_generation_prompt", (flags & 1) != 0},
                                          {"bos_token", "<s>"}, {"eos_token", "</s>"}};
  jinja::RenderOptions options;
  // Small limits keep each input fast; the limits themselves are what is tested.
  options.max_output = 1 << 20;
  options.max_steps = 2'000'000;
  std::tm now{};
  now.tm_year = 124;
  options.now = now;
  upg::fuzz::accept_errors([&] {
    const jinja::Template tmpl(parts[0], "fuzz");
    const std::string out = tmpl.render(context, options);
    UPG_FUZZ_CHECK(out.size() <= options.max_output);
    UPG_FUZZ_CHECK(tmpl.render(context, options) == out);
  });
  return 0;
}
