#pragma once
// Regex pre-tokenization (PCRE2, Unicode properties): text -> pieces that BPE encodes
// independently.
#include <string>
#include <string_view>
#include <vector>

namespace upg::tokenizer {

inline constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr const char* kDigitRegex = R"(\p{N})";

// What a GGUF "tokenizer.ggml.pre" name stands for, with llama.cpp's meaning.
struct PreTokenizerPreset {
  std::vector<std::string> regexes;
  bool ignore_merges = false;
};
// Throws upg::Error for names this engine does not know.
PreTokenizerPreset pre_tokenizer_preset(std::string_view name);

class PreTokenizer {
 public:
  // Each regex, in order, splits every current piece into its matches and the text
  // between them (HF Split behaviour "Isolated"), so nothing is ever dropped.
  // Throws upg::Error naming the pattern when one does not compile.
  explicit PreTokenizer(const std::vector<std::string>& regexes);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Appends the pieces of `text` to `out`; they are views into `text`, in order, and
  // concatenate to it. Safe to call from several threads at once.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  struct Compiled;
  std::vector<Compiled*> regexes_;
  void split_one(const Compiled& re, std::string_view piece, std::vector<std::string_view>& out) const;
};

}  // namespace upg::tokenizer
