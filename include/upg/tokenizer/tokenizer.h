#pragma once
// Byte-level BPE tokenizer (SmolLM2, Qwen2, Llama-3, Phi-4), built from tokenizer.json or
// from GGUF metadata (io/ fills a TokenizerSpec from the GGUF keys).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace upg {

// Plain data describing a tokenizer; no behaviour.
struct TokenizerSpec {
  std::vector<std::string> vocab;    // id -> token text in byte-level form ("Ġthe")
  std::vector<std::string> merges;   // "left right", highest priority first
  // GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
  // Empty means all normal. Control and user-defined tokens are matched verbatim in text.
  std::vector<int32_t> token_types;
  struct Added {
    int32_t id;
    std::string content;
    bool special;  // special tokens are skipped by decode(skip_special=true)
  };
  std::vector<Added> added_tokens;  // tokenizer.json "added_tokens"
  // GGUF "tokenizer.ggml.pre" name ("smollm", "gpt2", "llama-bpe", "qwen2", ...) or
  // empty; pre_regexes, when non-empty, wins (tokenizer.json gives the patterns).
  std::string pre_tokenizer;
  std::vector<std::string> pre_regexes;
  // Isolate every \p{N} before the regexes (Digits(individual_digits=true) in front);
  // parse_tokenizer_json puts Digits into pre_regexes instead, keeping their order.
  bool split_digits = false;
  // tokenizer.json BPE "ignore_merges" (Llama-3): a pre-token found whole in the vocab is
  // used as is. Also implied by the "llama-bpe"/"llama3" pre-tokenizer names.
  bool ignore_merges = false;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  bool add_bos = false;
  std::string chat_template;  // Jinja source (tokenizer.chat_template / tokenizer_config.json)
};

// Parses tokenizer.json text (and optionally tokenizer_config.json text for the chat
// template, bos/eos and add_bos). Throws upg::Error naming `origin` and the field.
TokenizerSpec parse_tokenizer_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                   std::string_view origin);

// The inverse of parse_tokenizer_json, for tokenizers built from GGUF metadata: a
// byte-level BPE tokenizer.json that the Hugging Face `tokenizers` library loads and that
// parse_tokenizer_json reads back to a tokenizer giving the same ids, and the matching
// tokenizer_config.json (chat template, bos/eos/pad/unk, add_bos_token). Throws
// upg::Error when the spec cannot be expressed (e.g. one token text under two ids).
std::string to_tokenizer_json(const TokenizerSpec& spec);
std::string to_tokenizer_config_json(const TokenizerSpec& spec);

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerSpec spec);  // throws upg::Error when the spec is unusable
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Special/added tokens written in the text are recognised when parse_special is true.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false, bool parse_special = true) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // Raw bytes of one token (byte-level decoded), special tokens included as their text.
  std::string token_bytes(int32_t id) const;
  const std::string& token_text(int32_t id) const;  // vocab form, e.g. "Ġthe"
  int32_t token_id(std::string_view token_text) const;  // -1 when absent
  bool is_special(int32_t id) const;
  int32_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  bool add_bos() const;

  // Chat formatting with the model's own chat template, run by the Jinja interpreter
  // (upg/jinja); a model that carries none gets a built-in ChatML or Phi-4 format.
  // With add_generation_prompt the text ends with the assistant turn's header. Throws
  // ParamError("chat_template", ...) when there is no usable template, upg::Error when
  // the template refuses the conversation (raise_exception).
  std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  // The same for OpenAI-style messages (role, content, tool_calls, name, ...) and a list
  // of tools (or null), passed to the template as they are.
  std::string apply_chat_template(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                  bool add_generation_prompt) const;
  // The model's own template source (empty when it carries none): what tells a caller
  // which tool-call format the model writes.
  const std::string& chat_template_source() const;
  // Which template renders chats, for verbose output.
  std::string chat_template_description() const;
  // Ids that end an assistant turn (eos plus the template's end-of-turn token).
  std::vector<int32_t> stop_ids() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of token ids into text without ever emitting half a UTF-8 character:
// bytes of an incomplete sequence are held until the next token completes them.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true) : tok_(tok), skip_special_(skip_special) {}
  std::string push(int32_t id);  // printable text completed by this token (maybe empty)
  std::string flush();           // whatever is left (invalid bytes become U+FFFD)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace upg
