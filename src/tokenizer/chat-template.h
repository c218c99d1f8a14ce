#pragma once
// Chat prompt formatting. Only the formats this engine targets are rendered; the Jinja
// source is inspected (not executed) to pick one.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "upg/tokenizer/tokenizer.h"

namespace upg::tokenizer {

enum class ChatFormat { kUnsupported, kChatML, kPhi4 };

struct ChatTemplate {
  ChatFormat format = ChatFormat::kUnsupported;
  // System text the template inserts when the conversation does not start with one
  // (SmolLM2, Qwen2); taken from the template source.
  std::optional<std::string> default_system;
};

ChatTemplate detect_chat_template(std::string_view jinja_source);

// Throws ParamError("chat_template", ...) for kUnsupported; the CLI suggests --raw.
std::string render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt);

}  // namespace upg::tokenizer
