#include "server/auth.h"

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/file-text.h"

namespace upg::server {

namespace {

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Constant time for a given length of `key`: every byte of the key is visited whatever
// the guess holds (OpenSSL's CRYPTO_memcmp needs equal lengths; this handles the rest).
bool same(std::string_view guess, std::string_view key) {
  unsigned char diff = guess.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < key.size(); ++i) diff |= uint8_t(key[i] ^ (i < guess.size() ? guess[i] : 0));
  return diff == 0;
}

}  // namespace

std::vector<std::string> read_api_keys(const std::string& path) {
  const std::string text = read_file_text(path, "the API key file", size_t(1) << 20);
  std::vector<std::string> keys;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line = trim(std::string_view(text).substr(pos, end - pos));
    if (!line.empty() && line[0] != '#') keys.emplace_back(line);
    pos = end + 1;
  }
  if (keys.empty()) throw Error(fmt::format("{}: no API key in the file", path));
  return keys;
}

bool authorized(std::string_view authorization, const std::vector<std::string>& keys) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (authorization.substr(0, kPrefix.size()) != kPrefix) return false;
  const std::string_view guess = trim(authorization.substr(kPrefix.size()));
  bool ok = false;
  for (const std::string& k : keys) ok |= same(guess, k);  // no early exit
  return ok;
}

}  // namespace upg::server
