#include "upg/tokenizer/byte-level.h"

#include <array>

#include "upg/core/utf8.h"

namespace upg::tokenizer {
namespace {

struct Tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<std::string, 256> to_text;  // UTF-8 of to_cp, precomputed for the encoder
  Tables() {
    // Printable Latin-1 bytes stand for themselves; the rest are moved, in byte order,
    // to U+0100 and up. This is the exact GPT-2 table, which every vocab depends on.
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      append_utf8(to_text[b], to_cp[b]);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return tables().to_cp[b]; }

std::optional<uint8_t> codepoint_to_byte(uint32_t cp) {
  // Inverse of the table above without a second table: identity for the printable
  // ranges, and U+0100..U+0143 for the 68 moved bytes in order.
  if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
    return static_cast<uint8_t>(cp);
  if (cp >= 256 && cp < 256 + 68) {
    static const auto moved = [] {
      std::array<uint8_t, 68> m{};
      for (int b = 0; b < 256; ++b)
        if (tables().to_cp[b] >= 256) m[tables().to_cp[b] - 256] = static_cast<uint8_t>(b);
      return m;
    }();
    return moved[cp - 256];
  }
  return std::nullopt;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += t.to_text[c];
  return out;
}

std::string byte_level_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Seq seq = next_utf8(text, pos);
    if (seq.kind == Utf8Seq::kValid) {
      if (auto b = codepoint_to_byte(seq.cp)) {
        out += static_cast<char>(*b);
      } else {
        out.append(text.substr(pos, seq.len));
      }
    } else {
      out.append(text.substr(pos, seq.len));
    }
    pos += seq.len;
  }
  return out;
}

}  // namespace upg::tokenizer
