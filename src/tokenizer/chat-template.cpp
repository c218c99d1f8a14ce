#include "tokenizer/chat-template.h"

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::tokenizer {
namespace {

using json = nlohmann::ordered_json;

// Text content of a message for the built-in formats: a string, or the text parts of
// an OpenAI content list.
std::string content_text(const json& m) {
  const auto c = m.find("content");
  if (c == m.end() || c->is_null()) return "";
  if (c->is_string()) return c->get<std::string>();
  std::string out;
  if (c->is_array())
    for (const json& part : *c)
      if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
        out += part["text"].get<std::string>();
  return out;
}

// The built-in formats, used only for a model that carries no chat template.
std::string render_fallback(ChatFallback format, const json& messages, bool add_generation_prompt) {
  const char* sep = format == ChatFallback::kPhi4 ? "<|im_sep|>" : "\n";
  const char* end = format == ChatFallback::kPhi4 ? "<|im_end|>" : "<|im_end|>\n";
  std::string out;
  for (const json& m : messages) {
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) throw ParamError("messages", "every message needs a string role");
    out += "<|im_start|>" + role->get<std::string>() + sep + content_text(m) + end;
  }
  if (add_generation_prompt) out += std::string("<|im_start|>assistant") + sep;
  return out;
}

}  // namespace

ChatTemplate make_chat_template(std::string_view source, std::optional<std::string> bos_token,
                                std::optional<std::string> eos_token, bool has_im_start, bool has_im_sep) {
  ChatTemplate t;
  t.bos_token = std::move(bos_token);
  t.eos_token = std::move(eos_token);
  if (!source.empty()) {
    // A template that does not parse fails the chat, not the model: --raw still works.
    try {
      t.jinja.emplace(source, "chat template");
    } catch (const Error& e) {
      t.parse_error = e.what();
    }
    return t;
  }
  t.fallback = has_im_sep ? ChatFallback::kPhi4 : has_im_start ? ChatFallback::kChatML : ChatFallback::kNone;
  return t;
}

std::string render_chat(const ChatTemplate& tmpl, const json& messages, bool add_generation_prompt,
                        const json& tools) {
  if (!messages.is_array()) throw ParamError("messages", "must be a list of messages");
  if (!tmpl.parse_error.empty()) throw ParamError("chat_template", tmpl.parse_error);
  if (!tmpl.jinja) {
    if (tmpl.fallback == ChatFallback::kNone)
      throw ParamError("chat_template", "the model carries no chat template and its vocabulary fits no built-in one");
    return render_fallback(tmpl.fallback, messages, add_generation_prompt);
  }
  // The variables transformers' apply_chat_template passes.
  json context = {{"messages", messages},
                  {"tools", tools},
                  {"documents", nullptr},
                  {"add_generation_prompt", add_generation_prompt}};
  if (tmpl.bos_token) context["bos_token"] = *tmpl.bos_token;
  if (tmpl.eos_token) context["eos_token"] = *tmpl.eos_token;
  return tmpl.jinja->render(context);
}

std::string describe(const ChatTemplate& tmpl) {
  if (tmpl.jinja || !tmpl.parse_error.empty()) return "the model's own chat template (Jinja)";
  switch (tmpl.fallback) {
    case ChatFallback::kChatML: return "built-in ChatML (the model carries no chat template)";
    case ChatFallback::kPhi4: return "built-in Phi-4 format (the model carries no chat template)";
    case ChatFallback::kNone: break;
  }
  return "none (the model carries no chat template)";
}

}  // namespace upg::tokenizer
