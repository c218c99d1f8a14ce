#include "server/chat-prompt.h"

#include "server/api-error.h"
#include "upg/core/error.h"

namespace upg::server {

std::string render_chat_prompt(const Tokenizer& tok, const nlohmann::ordered_json& messages, const ToolRequest& tools,
                               const ToolCallFormat& format) {
  try {
    // The model's own Jinja template over the OpenAI messages.
    return tok.apply_chat_template(prompt_messages(messages, tools, format), prompt_tools(tools, format), true);
  } catch (const ParamError& e) {
    throw ApiError(400, "the model's chat template cannot be used: " + e.problem() + " (use /v1/completions)",
                   "messages");
  } catch (const Error& e) {
    // The template refused the conversation (raise_exception: roles that do not
    // alternate, a system message where it takes none, ...).
    throw ApiError(400, std::string("messages: the model's chat template refused them: ") + e.what(), "messages");
  }
}

}  // namespace upg::server
