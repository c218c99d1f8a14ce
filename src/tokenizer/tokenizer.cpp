#include "upg/tokenizer/tokenizer.h"

#include <fmt/format.h>

#include <optional>

#include "tokenizer/bpe.h"
#include "upg/tokenizer/byte-level.h"
#include "tokenizer/chat-template.h"
#include "tokenizer/pre-tokenizer.h"
#include "tokenizer/special-tokens.h"
#include "upg/core/error.h"

namespace upg {

using tokenizer::BpeModel;
using tokenizer::PreTokenizer;
using tokenizer::SpecialTokenMatcher;

namespace {

constexpr int32_t kTypeControl = 3, kTypeUserDefined = 4;

void check_id(int32_t id, size_t n, const char* field) {
  if (id < -1 || id >= static_cast<int64_t>(n))
    throw Error(fmt::format("tokenizer: {} {} is outside the vocab (size {})", field, id, n));
}

std::vector<std::string> resolve_regexes(const TokenizerSpec& spec, bool& ignore_merges) {
  std::vector<std::string> regexes;
  ignore_merges = spec.ignore_merges;
  if (spec.split_digits) regexes.emplace_back(tokenizer::kDigitRegex);
  if (!spec.pre_regexes.empty()) {
    regexes.insert(regexes.end(), spec.pre_regexes.begin(), spec.pre_regexes.end());
  } else {
    auto preset = tokenizer::pre_tokenizer_preset(spec.pre_tokenizer);
    regexes.insert(regexes.end(), preset.regexes.begin(), preset.regexes.end());
    ignore_merges = ignore_merges || preset.ignore_merges;
  }
  return regexes;
}

}  // namespace

struct Tokenizer::Impl {
  TokenizerSpec spec;
  std::vector<bool> special;        // skipped by decode(skip_special)
  std::vector<std::string> bytes;   // raw bytes of every token
  std::optional<BpeModel> bpe;
  std::optional<PreTokenizer> pre;
  std::optional<SpecialTokenMatcher> literals;
  tokenizer::ChatTemplate chat;
  std::vector<int32_t> stops;

  void check(int32_t id) const {
    if (id < 0 || id >= static_cast<int32_t>(spec.vocab.size()))
      throw Error(fmt::format("tokenizer: token id {} is outside the vocab (size {})", id, spec.vocab.size()));
  }
};

Tokenizer::Tokenizer(TokenizerSpec spec) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const size_t n = spec.vocab.size();
  if (n == 0) throw Error("tokenizer: the vocab is empty");
  if (n > static_cast<size_t>(INT32_MAX)) throw Error("tokenizer: the vocab is too large");
  if (!spec.token_types.empty() && spec.token_types.size() != n)
    throw Error(fmt::format("tokenizer: token_types has {} entries for a vocab of {}", spec.token_types.size(), n));
  check_id(spec.bos_id, n, "bos_id");
  check_id(spec.eos_id, n, "eos_id");
  check_id(spec.pad_id, n, "pad_id");
  check_id(spec.unk_id, n, "unk_id");

  // Literal tokens: GGUF control and user-defined types, plus tokenizer.json added tokens.
  m.special.assign(n, false);
  std::vector<bool> literal(n, false);
  std::vector<tokenizer::LiteralToken> literals;
  for (size_t i = 0; i < spec.token_types.size(); ++i) {
    const int32_t t = spec.token_types[i];
    if (t == kTypeControl || t == kTypeUserDefined) {
      literal[i] = true;
      m.special[i] = t == kTypeControl;
    }
  }
  for (size_t k = 0; k < spec.added_tokens.size(); ++k) {
    const auto& a = spec.added_tokens[k];
    if (a.id < 0 || a.id >= static_cast<int64_t>(n))
      throw Error(fmt::format("tokenizer: added_tokens[{}] id {} is outside the vocab (size {})", k, a.id, n));
    if (a.content != spec.vocab[a.id])
      throw Error(fmt::format("tokenizer: added_tokens[{}] '{}' does not match vocab[{}] '{}'", k, a.content, a.id,
                              spec.vocab[a.id]));
    literal[a.id] = true;
    m.special[a.id] = m.special[a.id] || a.special;
  }
  for (size_t i = 0; i < n; ++i)
    if (literal[i]) literals.push_back({spec.vocab[i], static_cast<int32_t>(i), m.special[i]});
  m.literals.emplace(std::move(literals));

  // Literal tokens are stored as plain text; everything else is in byte-level form.
  m.bytes.resize(n);
  for (size_t i = 0; i < n; ++i)
    m.bytes[i] = literal[i] ? spec.vocab[i] : tokenizer::byte_level_to_bytes(spec.vocab[i]);

  bool ignore_merges = false;
  const auto regexes = resolve_regexes(spec, ignore_merges);
  m.pre.emplace(regexes);
  m.bpe.emplace(spec.vocab, spec.merges, spec.unk_id, ignore_merges);

  const auto token_text = [&](int32_t id) -> std::optional<std::string> {
    if (id < 0) return std::nullopt;
    return m.bytes[static_cast<size_t>(id)];
  };
  m.chat = tokenizer::make_chat_template(spec.chat_template, token_text(spec.bos_id), token_text(spec.eos_id),
                                         m.bpe->find("<|im_start|>") >= 0, m.bpe->find("<|im_sep|>") >= 0);
  if (spec.eos_id >= 0) m.stops.push_back(spec.eos_id);
  for (const char* eot : {"<|im_end|>", "<|end|>", "<|eot_id|>"}) {
    const int32_t id = m.bpe->find(eot);
    if (id >= 0 && id != spec.eos_id) m.stops.push_back(id);
  }
  m.spec = std::move(spec);
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos && m.spec.bos_id >= 0) ids.push_back(m.spec.bos_id);
  std::vector<tokenizer::TextSegment> segments;
  m.literals->split(text, parse_special, segments);
  std::vector<std::string_view> pieces;
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    pieces.clear();
    m.pre->split(seg.text, pieces);
    for (std::string_view p : pieces) m.bpe->encode_piece(p, ids);
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::string out;
  for (int32_t id : ids) {
    m.check(id);
    if (skip_special && m.special[id]) continue;
    out += m.bytes[id];
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  impl_->check(id);
  return impl_->bytes[id];
}

const std::string& Tokenizer::token_text(int32_t id) const {
  impl_->check(id);
  return impl_->spec.vocab[id];
}

int32_t Tokenizer::token_id(std::string_view token_text) const { return impl_->bpe->find(token_text); }

bool Tokenizer::is_special(int32_t id) const {
  impl_->check(id);
  return impl_->special[id];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->spec.vocab.size()); }
int32_t Tokenizer::bos_id() const { return impl_->spec.bos_id; }
int32_t Tokenizer::eos_id() const { return impl_->spec.eos_id; }
bool Tokenizer::add_bos() const { return impl_->spec.add_bos; }

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return tokenizer::render_chat(impl_->chat, list, add_generation_prompt, nullptr);
}

std::string Tokenizer::apply_chat_template(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                           bool add_generation_prompt) const {
  return tokenizer::render_chat(impl_->chat, messages, add_generation_prompt, tools);
}

const std::string& Tokenizer::chat_template_source() const { return impl_->spec.chat_template; }

std::string Tokenizer::chat_template_description() const { return tokenizer::describe(impl_->chat); }

std::vector<int32_t> Tokenizer::stop_ids() const { return impl_->stops; }

}  // namespace upg
