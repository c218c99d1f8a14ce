#pragma once
// UTF-8 helpers shared by the tokenizer (byte-level mapping, stream decoder) and the
// Jinja interpreter (string escapes, code points).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace upg {

// Appends the UTF-8 encoding of code point `cp` (must be <= 0x10FFFF).
void append_utf8(std::string& out, uint32_t cp);

// Result of looking at the UTF-8 sequence that starts at s[pos].
struct Utf8Seq {
  enum Kind { kValid, kInvalid, kIncomplete } kind;
  size_t len;    // bytes consumed: the sequence (kValid), 1 (kInvalid), all left (kIncomplete)
  uint32_t cp;   // decoded code point when kValid
};
// Strict RFC 3629 check (no overlongs, no surrogates, max U+10FFFF). kIncomplete means the
// bytes so far are a valid prefix that runs into the end of `s`.
Utf8Seq next_utf8(std::string_view s, size_t pos);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace upg
