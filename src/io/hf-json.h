#pragma once
// Shared by the safetensors and Hugging Face JSON parsers (templated on the nlohmann
// json type so this header need not include it).
#include <string>

namespace upg::io {

// A bad JSON value quoted in an error message: short scalars and small arrays verbatim,
// anything else by its type. Dumping an arbitrary value would recurse through hostile
// nesting (a stack overflow) or put megabytes into a one-line message.
template <class Json>
std::string json_brief(const Json& v) {
  constexpr size_t kMax = 80;
  bool small = !v.is_structured();
  if (v.is_array() && v.size() <= 8) {
    small = true;
    for (const auto& x : v) small = small && !x.is_structured();
  }
  if (!small) return v.type_name();
  std::string s = v.dump();
  if (s.size() > kMax) s = s.substr(0, kMax - 3) + "...";
  return s;
}

}  // namespace upg::io
