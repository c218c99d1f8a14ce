#include "tokenizer/chat-template.h"

#include "upg/core/error.h"

namespace upg::tokenizer {
namespace {

// Reads the literal system text after `<|im_start|>system` + newline up to `<|im_end|>`
// inside one Jinja string literal. A quote before `<|im_end|>` means the text is built
// from an expression (e.g. messages[0]['content']), so that occurrence is not a default.
std::optional<std::string> literal_after(std::string_view src, size_t pos) {
  // The newline is a real one in GGUF metadata and a Jinja "\n" escape in JSON-decoded
  // tokenizer_config.json templates; accept both.
  if (src.substr(pos, 1) == "\n") {
    pos += 1;
  } else if (src.substr(pos, 2) == "\\n") {
    pos += 2;
  } else {
    return std::nullopt;
  }
  static constexpr std::string_view kEnd = "<|im_end|>";
  std::string text;
  while (pos < src.size()) {
    if (src.compare(pos, kEnd.size(), kEnd) == 0) return text.empty() ? std::nullopt : std::optional(text);
    const char c = src[pos];
    if (c == '\'' || c == '"' || c == '{' || c == '}') return std::nullopt;
    if (c == '\\' && pos + 1 < src.size()) {
      const char e = src[pos + 1];
      text += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      pos += 2;
      continue;
    }
    text += c;
    ++pos;
  }
  return std::nullopt;
}

std::optional<std::string> find_default_system(std::string_view src) {
  static constexpr std::string_view kStart = "<|im_start|>system";
  for (size_t pos = src.find(kStart); pos != std::string_view::npos; pos = src.find(kStart, pos + 1)) {
    if (auto text = literal_after(src, pos + kStart.size())) return text;
  }
  return std::nullopt;
}

}  // namespace

ChatTemplate detect_chat_template(std::string_view src) {
  ChatTemplate t;
  // Phi-4 also uses <|im_start|>, so its separator is checked first.
  if (src.find("<|im_sep|>") != std::string_view::npos) {
    t.format = ChatFormat::kPhi4;
  } else if (src.find("<|im_start|>") != std::string_view::npos) {
    t.format = ChatFormat::kChatML;
    t.default_system = find_default_system(src);
  }
  return t;
}

std::string render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt) {
  std::string out;
  switch (tmpl.format) {
    case ChatFormat::kUnsupported:
      throw ParamError("chat_template", "the model's chat template is not one UPG renders");
    case ChatFormat::kChatML:
      // As in SmolLM2's template the default sits inside the message loop: none for an
      // empty conversation.
      if (tmpl.default_system && !messages.empty() && messages.front().role != "system")
        out += "<|im_start|>system\n" + *tmpl.default_system + "<|im_end|>\n";
      for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatFormat::kPhi4:
      for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "<|im_sep|>" + m.content + "<|im_end|>";
      if (add_generation_prompt) out += "<|im_start|>assistant<|im_sep|>";
      break;
  }
  return out;
}

}  // namespace upg::tokenizer
