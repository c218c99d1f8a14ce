#pragma once
// The prompt text of a chat request: the model's chat template over the OpenAI messages.
// One function, so the renderer behind it can change without touching the handlers.
#include <string>

#include <nlohmann/json.hpp>

#include "server/tool-calls.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::server {

// messages: parse_request's normalised messages; tools and the model's tool-call format
// decide what else the template sees (tool-calls.h). Ends with the assistant turn's
// header. Throws ApiError (400) when the model has no usable template.
std::string render_chat_prompt(const Tokenizer& tok, const nlohmann::ordered_json& messages, const ToolRequest& tools,
                               const ToolCallFormat& format);

}  // namespace upg::server
