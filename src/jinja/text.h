#pragma once
// Python str operations on UTF-8 text, as templates see them: lengths and indexes count
// code points, whitespace is Python's str.isspace(). Case mapping is Unicode's simple
// one-to-one mapping (glibc's C.UTF-8 tables); Python's few one-to-many mappings (such
// as "ß".upper() == "SS") are not made.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace upg::jinja {

size_t count_code_points(std::string_view s);
// The code point of one element of split_code_points (an invalid byte is its own value).
uint32_t code_point(std::string_view bytes);
// Each code point as its bytes; an invalid byte stands alone.
std::vector<std::string_view> split_code_points(std::string_view s);

// str.strip / lstrip / rstrip; `chars` empty optional means whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit); no separator splits on whitespace runs and drops empty parts.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, long maxsplit);
// str.replace(old, new, count); count < 0 replaces all.
std::string py_replace(std::string_view s, std::string_view from, std::string_view to, long count);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);  // first upper, the rest lower
std::string jinja_title(std::string_view s);    // jinja2's title filter
std::string py_title(std::string_view s);       // str.title()

}  // namespace upg::jinja
