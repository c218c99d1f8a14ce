// The chat-template renderer: detect_chat_template on a Jinja source, render_chat of a
// conversation. Input: a flags byte (bit 0 add_generation_prompt), then the template
// source, then NUL-separated role, content, role, content, ... Checked beyond "no
// crash": a supported template renders every message's role and content.
#include <cstdint>

#include "fuzz-util.h"
#include "tokenizer/chat-template.h"

using namespace upg;
using namespace upg::tokenizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool add_generation_prompt = data[0] & 1;
  const auto parts = upg::fuzz::split_nul(upg::fuzz::as_text(data + 1, size - 1));
  std::vector<ChatMessage> messages;
  for (size_t i = 1; i + 1 < parts.size(); i += 2) messages.push_back({std::string(parts[i]), std::string(parts[i + 1])});

  const ChatTemplate tmpl = detect_chat_template(parts[0]);
  upg::fuzz::accept_errors([&] {
    const std::string out = render_chat(tmpl, messages, add_generation_prompt);
    UPG_FUZZ_CHECK(tmpl.format != ChatFormat::kUnsupported);
    size_t pos = 0;
    for (const ChatMessage& m : messages) {
      pos = out.find(m.role, pos);
      UPG_FUZZ_CHECK(pos != std::string::npos);
      pos = out.find(m.content, pos + m.role.size());
      UPG_FUZZ_CHECK(pos != std::string::npos);
      pos += m.content.size();
    }
  });
  return 0;
}
