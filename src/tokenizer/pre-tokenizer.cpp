#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pre-tokenizer.h"

#include <fmt/format.h>
#include <pcre2.h>

#include <memory>

#include "upg/core/error.h"

namespace upg::tokenizer {
namespace {

// Llama-3 / cl100k: contractions in any case, letters with one leading non-letter,
// numbers in runs of up to three digits.
constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: Llama-3's pattern with every digit on its own.
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// o200k ("gpt-4o"): letter runs also split at lower->upper case boundaries.
constexpr const char* kGpt4oRegex =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

PreTokenizerPreset pre_tokenizer_preset(std::string_view name) {
  if (name.empty() || name == "default" || name == "gpt2") return {{kGpt2Regex}, false};
  if (name == "smollm") return {{kDigitRegex, kGpt2Regex}, false};
  // llama.cpp turns ignore_merges on for the Llama-3 family only, as its tokenizer.json does.
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return {{kLlama3Regex}, true};
  // "dbrx" and "smaug-bpe" are cl100k vocabularies (Phi-4's GGUFs carry "dbrx").
  if (name == "dbrx" || name == "smaug-bpe") return {{kLlama3Regex}, false};
  if (name == "qwen2") return {{kQwen2Regex}, false};
  if (name == "gpt-4o" || name == "llama4") return {{kGpt4oRegex}, false};
  throw Error(fmt::format(
      "tokenizer: unsupported pre-tokenizer '{}' (known: smollm, gpt2, llama-bpe, llama3, qwen2, dbrx, gpt-4o)",
      name));
}

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(const std::vector<std::string>& regexes) {
  try {
    for (const std::string& pattern : regexes) {
      auto c = std::make_unique<Compiled>();
      int err = 0;
      PCRE2_SIZE err_off = 0;
      // MATCH_INVALID_UTF: user text may hold invalid UTF-8; such bytes then match no
      // pattern and fall into the gaps, where byte-level BPE still encodes them.
      c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
      if (c->code == nullptr) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw Error(fmt::format("tokenizer: pre-tokenizer regex '{}' does not compile at offset {}: {}", pattern,
                                err_off, reinterpret_cast<const char*>(msg)));
      }
      // JIT is an optimisation only; the interpreter gives the same matches.
      pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE);
      regexes_.push_back(c.release());
    }
  } catch (...) {
    for (Compiled* c : regexes_) delete c;
    throw;
  }
}

PreTokenizer::~PreTokenizer() {
  for (Compiled* c : regexes_) delete c;
}

void PreTokenizer::split_one(const Compiled& re, std::string_view piece, std::vector<std::string_view>& out) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(re.code, nullptr), &pcre2_match_data_free);
  if (!md) throw Error("tokenizer: out of memory for regex match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  size_t gap_start = 0, pos = 0;
  while (pos < piece.size()) {
    const int rc = pcre2_match(re.code, subject, piece.size(), pos, 0, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(fmt::format("tokenizer: pre-tokenizer regex failed: {}", reinterpret_cast<const char*>(msg)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t start = ov[0], end = ov[1];
    if (end == start) {
      // An empty match splits nothing; step over one character and keep looking.
      pos = start + 1;
      while (pos < piece.size() && (static_cast<unsigned char>(piece[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > gap_start) out.push_back(piece.substr(gap_start, start - gap_start));
    out.push_back(piece.substr(start, end - start));
    gap_start = pos = end;
  }
  if (gap_start < piece.size()) out.push_back(piece.substr(gap_start));
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  if (regexes_.empty()) {
    out.push_back(text);
    return;
  }
  std::vector<std::string_view> cur{text}, next;
  for (size_t i = 0; i < regexes_.size(); ++i) {
    auto& dst = i + 1 == regexes_.size() ? out : next;
    for (std::string_view piece : cur) split_one(*regexes_[i], piece, dst);
    if (&dst == &next) {
      cur.swap(next);
      next.clear();
    }
  }
}

}  // namespace upg::tokenizer
