#include "jinja/text.h"

#include <algorithm>
#include <cstdint>
#include <locale.h>
#include <wctype.h>

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

// glibc's C.UTF-8 locale carries the Unicode case tables; without it (a libc built
// without it) case mapping covers ASCII.
locale_t utf8_locale() {
  static const locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return l;
}

uint32_t upper(uint32_t cp) {
  if (locale_t l = utf8_locale()) return static_cast<uint32_t>(towupper_l(static_cast<wint_t>(cp), l));
  return cp >= 'a' && cp <= 'z' ? cp - 32 : cp;
}

uint32_t lower(uint32_t cp) {
  if (locale_t l = utf8_locale()) return static_cast<uint32_t>(towlower_l(static_cast<wint_t>(cp), l));
  return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
}

bool is_alpha(uint32_t cp) {
  if (locale_t l = utf8_locale()) return iswalpha_l(static_cast<wint_t>(cp), l) != 0;
  return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
}

// Maps every code point of `s` through f(index, code point); invalid bytes pass as they are.
template <class F>
std::string map_code_points(std::string_view s, F&& f) {
  std::string out;
  out.reserve(s.size());
  size_t k = 0;
  for (std::string_view piece : split_code_points(s)) {
    const Utf8Seq seq = next_utf8(piece, 0);
    if (seq.kind != Utf8Seq::kValid) {
      out += piece;
    } else {
      append_utf8(out, f(k, seq.cp));
    }
    ++k;
  }
  return out;
}

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

std::string py_upper(std::string_view s) {
  return map_code_points(s, [](size_t, uint32_t cp) { return upper(cp); });
}

std::string py_lower(std::string_view s) {
  return map_code_points(s, [](size_t, uint32_t cp) { return lower(cp); });
}

std::string py_capitalize(std::string_view s) {
  return map_code_points(s, [](size_t k, uint32_t cp) { return k == 0 ? upper(cp) : lower(cp); });
}

std::string jinja_title(std::string_view s) {
  // Words begin after runs of whitespace, '-', '(', '{', '[' or '<'.
  bool begin = true;
  return map_code_points(s, [&](size_t, uint32_t cp) {
    if (is_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<') {
      begin = true;
      return cp;
    }
    const uint32_t r = begin ? upper(cp) : lower(cp);
    begin = false;
    return r;
  });
}

std::string py_title(std::string_view s) {
  // A letter after a non-letter starts a word.
  bool prev_letter = false;
  return map_code_points(s, [&](size_t, uint32_t cp) {
    const uint32_t r = prev_letter ? lower(cp) : upper(cp);
    prev_letter = is_alpha(cp);
    return r;
  });
}

}  // namespace upg::jinja
