#pragma once
// GPT-2 "bytes_to_unicode": every byte gets a printable code point so byte strings can
// live in a text vocabulary ("Ġ" is the space byte 0x20).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace upg::tokenizer {

// The code point standing for byte `b`.
uint32_t byte_to_codepoint(uint8_t b);
// The byte a code point stands for, or nothing when it is not one of the 256.
std::optional<uint8_t> codepoint_to_byte(uint32_t cp);

// Raw bytes -> byte-level text (always valid UTF-8).
std::string bytes_to_byte_level(std::string_view bytes);
// Byte-level text -> raw bytes. Code points outside the mapping are kept as their own
// UTF-8 bytes (as the HF ByteLevel decoder does), so this never fails.
std::string byte_level_to_bytes(std::string_view text);

}  // namespace upg::tokenizer
