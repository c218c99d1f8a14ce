#include "server/chat-prompt.h"

#include <vector>

#include "server/api-error.h"
#include "upg/core/error.h"

namespace upg::server {

std::string render_chat_prompt(const Tokenizer& tok, const nlohmann::json& messages) {
  std::vector<ChatMessage> msgs;
  msgs.reserve(messages.size());
  for (const nlohmann::json& m : messages)
    msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  try {
    return tok.apply_chat_template(msgs, true);
  } catch (const ParamError& e) {
    throw ApiError(400, "the model's chat template cannot be used: " + e.problem() + " (use /v1/completions)",
                   "messages");
  }
}

}  // namespace upg::server
