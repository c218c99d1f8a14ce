#include "tokenizer/chat-template.h"

#include <gtest/gtest.h>

#include "tokenizer/test-vocab.h"
#include "upg/core/error.h"

namespace upg::tokenizer {
namespace {

// SmolLM2-Instruct's template as stored in its GGUF (real newlines inside the literals).
constexpr const char* kSmolLM2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// Qwen2.5-style, as JSON-decoded from tokenizer_config.json: "\n" is a Jinja escape and
// the first system branch concatenates the user's content.
constexpr const char* kQwen =
    R"({%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }})"
    R"({%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You\'re helpful.<|im_end|>\n' }})"
    R"({%- endif %}{%- for message in messages %}...{%- endfor %})";

constexpr const char* kPhi4 =
    "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";

const std::vector<ChatMessage> kUserOnly = {{"user", "Hi"}};
const std::vector<ChatMessage> kWithSystem = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"},
                                              {"user", "Bye"}};

TEST(ChatTemplate, SmolLM2InsertsItsDefaultSystemMessage) {
  const ChatTemplate t = detect_chat_template(kSmolLM2);
  ASSERT_EQ(t.format, ChatFormat::kChatML);
  ASSERT_TRUE(t.default_system.has_value());
  EXPECT_EQ(*t.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(render_chat(t, kUserOnly, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ChatMLWithSystemMessage) {
  const ChatTemplate t = detect_chat_template(kSmolLM2);
  EXPECT_EQ(render_chat(t, kWithSystem, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(t, kWithSystem, false).find("<|im_start|>assistant\n", 90), std::string::npos);
}

TEST(ChatTemplate, EscapedTemplateDefaultSystem) {
  const ChatTemplate t = detect_chat_template(kQwen);
  ASSERT_EQ(t.format, ChatFormat::kChatML);
  ASSERT_TRUE(t.default_system.has_value());
  EXPECT_EQ(*t.default_system, "You are Qwen, created by Alibaba Cloud. You're helpful.");
}

TEST(ChatTemplate, ChatMLWithoutDefaultSystem) {
  const ChatTemplate t =
      detect_chat_template("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content']}}{% endfor %}");
  ASSERT_EQ(t.format, ChatFormat::kChatML);
  EXPECT_FALSE(t.default_system.has_value());
  EXPECT_EQ(render_chat(t, kUserOnly, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, Phi4) {
  const ChatTemplate t = detect_chat_template(kPhi4);
  ASSERT_EQ(t.format, ChatFormat::kPhi4);
  EXPECT_EQ(render_chat(t, {{"system", "S"}, {"user", "Hi"}}, true),
            "<|im_start|>system<|im_sep|>S<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|>"
            "<|im_start|>assistant<|im_sep|>");
}

TEST(ChatTemplate, UnknownOrEmptyIsRejected) {
  for (const char* src : {"", "{{ bos_token }}[INST] {{ m }} [/INST]"}) {
    const ChatTemplate t = detect_chat_template(src);
    EXPECT_EQ(t.format, ChatFormat::kUnsupported);
    try {
      render_chat(t, kUserOnly, true);
      FAIL() << "expected upg::ParamError";
    } catch (const ParamError& e) {
      EXPECT_EQ(e.param(), "chat_template");
      EXPECT_EQ(e.problem(), "the model's chat template is not one UPG renders");
    }
  }
}

TEST(ChatTemplate, TokenizerStopIds) {
  auto spec = testing::byte_spec({"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  spec.eos_id = 256;
  spec.chat_template = kSmolLM2;
  Tokenizer tok(spec);
  EXPECT_EQ(tok.stop_ids(), (std::vector<int32_t>{256, 258}));
  EXPECT_EQ(tok.apply_chat_template({{"system", "x"}}, false), "<|im_start|>system\nx<|im_end|>\n");
  spec.eos_id = 258;  // SmolLM2's GGUF uses <|im_end|> as eos: no duplicate
  EXPECT_EQ(Tokenizer(spec).stop_ids(), (std::vector<int32_t>{258}));
}

}  // namespace
}  // namespace upg::tokenizer
