#include "io/gguf-tokenizer.h"

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::io {

namespace {

constexpr int32_t kTypeControl = 3;
constexpr int32_t kTypeUserDefined = 4;

int32_t token_id(const GgufFile& g, const char* key, size_t vocab) {
  auto id = g.opt_i32(key);
  if (!id) return -1;
  if (*id < 0 || size_t(*id) >= vocab)
    throw Error(fmt::format("{}: metadata key '{}': token id {} is outside the vocabulary (size {})", g.path(), key,
                            *id, vocab));
  return *id;
}

}  // namespace

std::optional<TokenizerSpec> gguf_tokenizer_spec(const GgufFile& g) {
  auto model = g.opt_string("tokenizer.ggml.model");
  if (!model) return std::nullopt;
  if (*model != "gpt2")
    throw Error(fmt::format("{}: metadata key 'tokenizer.ggml.model': unsupported tokenizer model '{}' (only 'gpt2' "
                            "byte-level BPE is supported)",
                            g.path(), *model));
  TokenizerSpec s;
  s.vocab = g.get_string_array("tokenizer.ggml.tokens");
  if (s.vocab.empty()) throw Error(fmt::format("{}: metadata key 'tokenizer.ggml.tokens' is empty", g.path()));
  if (g.has("tokenizer.ggml.merges")) s.merges = g.get_string_array("tokenizer.ggml.merges");
  if (g.has("tokenizer.ggml.token_type")) {
    s.token_types = g.get_i32_array("tokenizer.ggml.token_type");
    if (s.token_types.size() != s.vocab.size())
      throw Error(fmt::format("{}: metadata key 'tokenizer.ggml.token_type' has {} entries for {} tokens", g.path(),
                              s.token_types.size(), s.vocab.size()));
  }
  s.pre_tokenizer = g.opt_string("tokenizer.ggml.pre").value_or("");
  s.bos_id = token_id(g, "tokenizer.ggml.bos_token_id", s.vocab.size());
  s.eos_id = token_id(g, "tokenizer.ggml.eos_token_id", s.vocab.size());
  s.unk_id = token_id(g, "tokenizer.ggml.unknown_token_id", s.vocab.size());
  s.pad_id = token_id(g, "tokenizer.ggml.padding_token_id", s.vocab.size());
  // Without the key, llama.cpp adds BOS only for the Llama-3 family of BPE pre-tokenizers.
  const std::string& pre = s.pre_tokenizer;
  bool default_bos = pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3";
  s.add_bos = g.opt_bool("tokenizer.ggml.add_bos_token").value_or(default_bos);
  s.chat_template = g.opt_string("tokenizer.chat_template").value_or("");
  for (size_t i = 0; i < s.token_types.size(); ++i) {
    int32_t t = s.token_types[i];
    if (t == kTypeControl || t == kTypeUserDefined) s.added_tokens.push_back({int32_t(i), s.vocab[i], t == kTypeControl});
  }
  return s;
}

}  // namespace upg::io
