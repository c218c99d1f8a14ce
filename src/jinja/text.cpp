#include "jinja/text.h"

#include <algorithm>
#include <cstdint>

#include "upg/core/utf8.h"

namespace upg::jinja {
namespace {

// The code point starting at s[i] and its byte length; an invalid or truncated
// sequence counts as one code point per byte, valued as the byte.
std::pair<uint32_t, size_t> decode_at(std::string_view s, size_t i) {
  const Utf8Seq seq = next_utf8(s, i);
  if (seq.kind == Utf8Seq::kValid) return {seq.cp, seq.len};
  return {static_cast<unsigned char>(s[i]), 1};
}

bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

uint32_t code_point(std::string_view bytes) { return bytes.empty() ? 0 : decode_at(bytes, 0).first; }

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += decode_at(s, i).second) ++n;
  return n;
}

std::vector<std::string_view> split_code_points(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = decode_at(s, i).second;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  std::vector<std::string_view> cps = split_code_points(s);
  std::vector<std::string_view> set;
  if (chars) set = split_code_points(*chars);
  const auto strippable = [&](std::string_view cp) {
    if (!chars) return is_space(decode_at(cp, 0).first);
    return std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strippable(cps[b])) ++b;
  if (right)
    while (e > b && strippable(cps[e - 1])) --e;
  if (b == e) return "";
  const char* begin = cps[b].data();
  const char* end = cps[e - 1].data() + cps[e - 1].size();
  return std::string(begin, end);
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, long maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<long>(out.size()) < maxsplit) {
      const size_t at = s.find(*sep, pos);
      if (at == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, at - pos));
      pos = at + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  size_t i = 0;
  const auto space_at = [&](size_t k) { return is_space(decode_at(s, k).first); };
  while (i < s.size()) {
    while (i < s.size() && space_at(i)) i += decode_at(s, i).second;
    if (i >= s.size()) break;
    if (maxsplit >= 0 && static_cast<long>(out.size()) >= maxsplit) {
      // The rest, with trailing whitespace removed, is the last part.
      out.push_back(py_strip(s.substr(i), std::nullopt, false, true));
      break;
    }
    const size_t start = i;
    while (i < s.size() && !space_at(i)) i += decode_at(s, i).second;
    out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

std::string py_replace(std::string_view s, std::string_view from, std::string_view to, long count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every code point and at the end.
    long n = 0;
    for (std::string_view cp : split_code_points(s)) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      out += cp;
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t pos = 0;
  long n = 0;
  while (count < 0 || n < count) {
    const size_t at = s.find(from, pos);
    if (at == std::string_view::npos) break;
    out += s.substr(pos, at - pos);
    out += to;
    pos = at + from.size();
    ++n;
  }
  out += s.substr(pos);
  return out;
}

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = upper(c);
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out = ascii_lower(s);
  if (!out.empty()) out[0] = upper(out[0]);
  return out;
}

std::string jinja_title(std::string_view s) {
  // Words begin after runs of whitespace, '-', '(', '{', '[' or '<'.
  std::string out(s);
  bool begin = true;
  for (char& c : out) {
    const bool sep = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '-' ||
                     c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      begin = true;
      continue;
    }
    c = begin ? upper(c) : lower(c);
    begin = false;
  }
  return out;
}

std::string py_title(std::string_view s) {
  std::string out(s);
  bool prev_letter = false;
  for (char& c : out) {
    c = prev_letter ? lower(c) : upper(c);
    prev_letter = is_alpha(c) || static_cast<unsigned char>(c) >= 0x80;
  }
  return out;
}

}  // namespace upg::jinja
