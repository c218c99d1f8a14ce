#include "tokenizer/chat-template.h"

#include <gtest/gtest.h>

#include "tokenizer/test-vocab.h"
#include "upg/core/error.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::tokenizer {
namespace {

using json = nlohmann::ordered_json;

// SmolLM2-Instruct's template as stored in its GGUF (real newlines inside the literals).
constexpr const char* kSmolLM2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

constexpr const char* kPhi4 =
    "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";

json messages(std::initializer_list<std::pair<const char*, const char*>> turns) {
  json out = json::array();
  for (const auto& [role, content] : turns) out.push_back({{"role", role}, {"content", content}});
  return out;
}

ChatTemplate from(const char* source, bool im_start = false, bool im_sep = false) {
  return make_chat_template(source, "<s>", "</s>", im_start, im_sep);
}

TEST(ChatTemplate, RunsTheModelsTemplate) {
  const ChatTemplate t = from(kSmolLM2);
  EXPECT_EQ(render_chat(t, messages({{"user", "Hi"}}), true, nullptr),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(t, messages({{"system", "Be brief."}, {"user", "Hi"}}), false, nullptr),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(render_chat(from(kPhi4), messages({{"system", "S"}, {"user", "Hi"}}), true, nullptr),
            "<|im_start|>system<|im_sep|>S<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|>"
            "<|im_start|>assistant<|im_sep|>");
  EXPECT_EQ(describe(t), "the model's own chat template (Jinja)");
}

TEST(ChatTemplate, PassesTokensToolsAndMessageFieldsThrough) {
  const ChatTemplate t = from(
      "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{% if m.tool_calls %}"
      "{{ m.tool_calls[0].function.arguments | tojson }}{% endif %};{% endfor %}{{ tools | length }}{{ eos_token }}");
  json msgs = messages({{"user", "Weather?"}});
  msgs.push_back({{"role", "assistant"},
                  {"content", ""},
                  {"tool_calls", {{{"function", {{"name", "w"}, {"arguments", {{"city", "Köln"}}}}}}}}});
  EXPECT_EQ(render_chat(t, msgs, false, json::array({{{"name", "w"}}})), R"(<s>user:Weather?;assistant:{"city": "Köln"};1</s>)");
  // A model without a bos token leaves bos_token undefined, which prints as nothing.
  const ChatTemplate no_bos = make_chat_template("[{{ bos_token }}]", std::nullopt, "</s>", false, false);
  EXPECT_EQ(render_chat(no_bos, json::array(), false, nullptr), "[]");
}

TEST(ChatTemplate, FallbackOnlyWithoutATemplate) {
  const json chat = messages({{"system", "S"}, {"user", "Hi"}});
  const ChatTemplate chatml = from("", true, false);
  EXPECT_EQ(render_chat(chatml, chat, true, nullptr),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(describe(chatml), "built-in ChatML (the model carries no chat template)");
  const ChatTemplate phi4 = from("", true, true);
  EXPECT_EQ(render_chat(phi4, chat, true, nullptr),
            "<|im_start|>system<|im_sep|>S<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|><|im_start|>assistant<|im_sep|>");
  try {
    render_chat(from(""), chat, true, nullptr);
    FAIL() << "expected upg::ParamError";
  } catch (const ParamError& e) {
    EXPECT_EQ(e.param(), "chat_template");
    EXPECT_EQ(e.problem(), "the model carries no chat template and its vocabulary fits no built-in one");
  }
}

TEST(ChatTemplate, BrokenTemplateFailsTheChatNotTheModel) {
  const ChatTemplate t = from("{% for m in messages %}{{ m.content }", true);
  try {
    render_chat(t, messages({{"user", "Hi"}}), true, nullptr);
    FAIL() << "expected upg::ParamError";
  } catch (const ParamError& e) {
    EXPECT_EQ(e.param(), "chat_template");
    EXPECT_EQ(e.problem(), "chat template:1:37: unexpected '}'");
  }
}

TEST(ChatTemplate, TemplateRefusalIsAnError) {
  const ChatTemplate t = from(
      "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% endfor %}");
  try {
    render_chat(t, messages({{"user", "a"}, {"user", "b"}}), true, nullptr);
    FAIL() << "expected upg::Error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "chat template:1:80: raise_exception: Conversation roles must alternate "
                           "user/assistant/user/assistant/...");
  }
}

TEST(ChatTemplate, TokenizerStopIdsAndTemplate) {
  auto spec = testing::byte_spec({"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  spec.eos_id = 256;
  spec.chat_template = kSmolLM2;
  Tokenizer tok(spec);
  EXPECT_EQ(tok.stop_ids(), (std::vector<int32_t>{256, 258}));
  EXPECT_EQ(tok.apply_chat_template({{"system", "x"}}, false), "<|im_start|>system\nx<|im_end|>\n");
  EXPECT_EQ(tok.apply_chat_template(messages({{"system", "x"}}), nullptr, false), "<|im_start|>system\nx<|im_end|>\n");
  spec.eos_id = 258;  // SmolLM2's GGUF uses <|im_end|> as eos: no duplicate
  EXPECT_EQ(Tokenizer(spec).stop_ids(), (std::vector<int32_t>{258}));
  spec.chat_template.clear();
  EXPECT_EQ(Tokenizer(spec).chat_template_description(), "built-in ChatML (the model carries no chat template)");
}

}  // namespace
}  // namespace upg::tokenizer
