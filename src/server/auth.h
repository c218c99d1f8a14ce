#pragma once
// Bearer-token checks for --api-key / --api-key-file.
#include <string>
#include <string_view>
#include <vector>

namespace upg::server {

// The keys of a file: one per line; blank lines and lines starting with '#' skipped,
// surrounding whitespace trimmed. Throws upg::Error naming the file when it cannot be
// read or holds no key.
std::vector<std::string> read_api_keys(const std::string& path);

// True when `authorization` (the header's value) is "Bearer <one of keys>". Every key
// is compared in full, in time that depends only on the lengths, so the time taken does
// not tell how much of a guess was right.
bool authorized(std::string_view authorization, const std::vector<std::string>& keys);

}  // namespace upg::server
