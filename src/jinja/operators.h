#pragma once
// Jinja's operators on values with Python's semantics: arithmetic (int overflow is an
// error rather than a big integer), concatenation, membership, attribute and item
// lookup, slicing. All throw Problem.
#include <cstddef>
#include <optional>
#include <string_view>

#include "jinja/value.h"

namespace upg::jinja {

// + - * / // % ** ~ == != < <= > >= in; `limit` caps the bytes of built text and lists.
Value binary_op(std::string_view op, const Value& a, const Value& b, size_t limit);
Value negate(const Value& v);
bool contains(const Value& container, const Value& item);

// obj.name: a dict key (a missing one is undefined); undefined for other types, and
// an error when obj itself is undefined.
Value get_attr(const Value& obj, std::string_view name);
// obj[key]: list and string index (negative from the end), dict key; missing is undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] of a list or string.
Value slice(const Value& obj, const std::optional<int64_t>& start, const std::optional<int64_t>& stop,
            const std::optional<int64_t>& step);
// The attribute= argument of filters: dotted names, integers index lists.
Value get_path(const Value& obj, std::string_view path);

}  // namespace upg::jinja
