#pragma once
// Chat prompt formatting: the model's own Jinja chat template, run by the jinja layer's
// interpreter. Only a model that carries no template falls back to a built-in format
// (ChatML, or Phi-4's when the vocabulary has <|im_sep|>).
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "upg/jinja/template.h"

namespace upg::tokenizer {

enum class ChatFallback { kNone, kChatML, kPhi4 };

struct ChatTemplate {
  std::optional<jinja::Template> jinja;  // the model's template, parsed
  std::string parse_error;               // why the model's template did not parse
  ChatFallback fallback = ChatFallback::kNone;
  // bos_token / eos_token for the template; left undefined when the model has none, as
  // transformers passes only the special tokens a tokenizer has.
  std::optional<std::string> bos_token, eos_token;
};

// `source` is the model's template (empty when it has none); the vocabulary's
// <|im_start|> and <|im_sep|> pick the fallback for a model without one.
ChatTemplate make_chat_template(std::string_view source, std::optional<std::string> bos_token,
                                std::optional<std::string> eos_token, bool has_im_start, bool has_im_sep);

// Renders `messages` (OpenAI-style objects: role, content, optional tool_calls, name,
// ...) and `tools` (an array, or null). Throws ParamError("chat_template", ...) when the
// model has no usable template, upg::Error from the template itself (raise_exception).
std::string render_chat(const ChatTemplate& tmpl, const nlohmann::ordered_json& messages, bool add_generation_prompt,
                        const nlohmann::ordered_json& tools);

// One line for verbose output: which template renders the chat.
std::string describe(const ChatTemplate& tmpl);

}  // namespace upg::tokenizer
