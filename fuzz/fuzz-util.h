#pragma once
// Shared by the libFuzzer harnesses in fuzz/. A harness feeds its bytes to one real reader;
// upg::Error is that reader's clean rejection of bad input and is caught. Anything else
// that escapes (another exception type, a crash, a sanitizer report, a leak, a hang, a
// huge allocation) is a bug that libFuzzer reports with the input that caused it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "upg/core/error.h"

namespace upg::fuzz {

// Runs f; an upg::Error is a clean rejection and ends f quietly (printed when
// UPG_FUZZ_VERBOSE is set, to see why a seed or a crash input is rejected).
template <class F>
void accept_errors(F&& f) {
  try {
    f();
  } catch (const upg::Error& e) {
    static const bool verbose = std::getenv("UPG_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "upg::Error: %s\n", e.what());
  }
}

// A property the harness checks beyond "no crash" (a round trip, an invariant) failed.
[[noreturn]] inline void invariant_failed(const char* what) {
  std::fprintf(stderr, "fuzz invariant failed: %s\n", what);
  std::abort();
}
#define UPG_FUZZ_CHECK(cond) \
  do {                       \
    if (!(cond)) ::upg::fuzz::invariant_failed(#cond); \
  } while (0)

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The input cut at NUL bytes, for harnesses that take several texts (JSON and the chat
// template never need a raw NUL, so it is a natural separator).
inline std::vector<std::string_view> split_nul(std::string_view s, size_t max_parts = 64) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    size_t p = s.find('\0');
    if (p == std::string_view::npos) break;
    parts.push_back(s.substr(0, p));
    s.remove_prefix(p + 1);
  }
  parts.push_back(s);
  return parts;
}

// A file of the source tree (fixtures): $UPG_SOURCE_DIR when set, else the tree this
// binary was configured from.
inline std::string source_file(const std::string& rel) {
  const char* env = std::getenv("UPG_SOURCE_DIR");
  return std::string(env && *env ? env : UPG_SOURCE_DIR) + "/" + rel;
}

}  // namespace upg::fuzz
