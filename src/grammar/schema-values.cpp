#include "grammar/schema-values.h"

#include <cmath>
#include <regex>
#include <string>
#include <string_view>

namespace upg::grammar {
namespace {

using json = nlohmann::ordered_json;
using Result = std::optional<bool>;

// Keywords that assert something and are not evaluated here: a schema with one of them
// (reached by the value) is "unknown".
constexpr std::string_view kUnevaluated[] = {
    "format", "dependencies", "dependentRequired", "dependentSchemas", "if", "then", "else", "contains",
    "minContains", "maxContains", "additionalItems", "unevaluatedItems", "unevaluatedProperties",
    "propertyNames", "$dynamicRef", "$recursiveRef"};

bool is_integer(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return true;
  return v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>();
}

bool has_type(const json& v, const std::string& t) {
  if (t == "null") return v.is_null();
  if (t == "boolean") return v.is_boolean();
  if (t == "integer") return is_integer(v);
  if (t == "number") return v.is_number();
  if (t == "string") return v.is_string();
  if (t == "array") return v.is_array();
  if (t == "object") return v.is_object();
  return false;
}

// JSON equality as JSON Schema has it: objects regardless of key order, 1 == 1.0, and
// true is not 1 (nlohmann's ordered objects compare in order).
bool same(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!same(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, x] : a.items())
      if (!b.contains(k) || !same(x, b[k])) return false;
    return true;
  }
  return a == b;
}

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// ECMA-262 patterns through std::regex's ECMAScript grammar; ASCII strings only (std::regex
// works on bytes), anything it cannot read is unknown.
Result search(const std::string& pattern, const std::string& s) {
  if (!regex_is_small(pattern) || s.size() > 256) return std::nullopt;
  for (unsigned char c : s)
    if (c >= 0x80) return std::nullopt;
  try {
    return std::regex_search(s, std::regex(pattern, std::regex::ECMAScript));
  } catch (const std::regex_error&) {
    return std::nullopt;
  }
}

class Validator {
 public:
  explicit Validator(const json& root) : root_(root) {}

  Result valid(const json& v, const json& s, int depth) {
    if (depth > 32) return std::nullopt;
    if (s.is_boolean()) return s.get<bool>();
    if (!s.is_object()) return std::nullopt;
    for (std::string_view k : kUnevaluated)
      if (s.contains(k) && applies(k, v)) return std::nullopt;
    // Every keyword must hold; an unknown one makes the answer unknown unless another fails.
    bool unknown = false;
    auto take = [&](Result r) {
      if (!r) unknown = true;
      return r.value_or(true);
    };
    for (const auto& [k, x] : s.items())
      if (!take(keyword(v, k, x, s, depth))) return false;
    if (unknown) return std::nullopt;
    return true;
  }

 private:
  // Whether a type-specific keyword applies to the value at all.
  static bool applies(std::string_view k, const json& v) {
    if (k == "format") return v.is_string();
    if (k == "additionalItems" || k == "contains" || k == "minContains" || k == "maxContains" ||
        k == "unevaluatedItems")
      return v.is_array();
    if (k == "dependencies" || k == "dependentRequired" || k == "dependentSchemas" || k == "propertyNames" ||
        k == "unevaluatedProperties")
      return v.is_object();
    return true;
  }

  // How many of the branches hold must lie in [lo, hi] (hi < 0: all of them); decided
  // even with unknown branches when every way they could go gives the same answer.
  Result count_valid(const json& v, const json& list, int depth, int lo, int hi) {
    if (!list.is_array()) return std::nullopt;
    int yes = 0, unknown = 0;
    for (const auto& b : list) {
      const Result r = valid(v, b, depth + 1);
      if (!r) ++unknown;
      else yes += *r;
    }
    const int n = int(list.size());
    if (lo < 0) lo = n;
    if (hi < 0) hi = n;
    auto fits = [&](int k) { return k >= lo && k <= hi; };
    bool some = false, every = true;
    for (int k = yes; k <= yes + unknown; ++k) {
      if (fits(k)) some = true;
      else every = false;
    }
    if (every) return true;
    if (!some) return false;
    return std::nullopt;
  }

  Result keyword(const json& v, const std::string& k, const json& x, const json& s, int depth) {
    if (k == "type") {
      if (x.is_string()) return has_type(v, x.get<std::string>());
      if (!x.is_array()) return std::nullopt;
      for (const auto& t : x)
        if (t.is_string() && has_type(v, t.get<std::string>())) return true;
      return false;
    }
    if (k == "enum") {
      if (!x.is_array()) return std::nullopt;
      for (const auto& e : x)
        if (same(v, e)) return true;
      return false;
    }
    if (k == "const") return same(v, x);
    if (k == "not") {
      const Result r = valid(v, x, depth + 1);
      return r ? Result(!*r) : std::nullopt;
    }
    if (k == "allOf") return count_valid(v, x, depth, -1, -1);
    if (k == "anyOf") return count_valid(v, x, depth, 1, -1);
    if (k == "oneOf") return count_valid(v, x, depth, 1, 1);
    if (k == "$ref") {
      if (!x.is_string() || !x.get<std::string>().starts_with("#")) return std::nullopt;
      try {
        return valid(v, root_.at(json::json_pointer(x.get<std::string>().substr(1))), depth + 1);
      } catch (const json::exception&) {
        return std::nullopt;
      }
    }
    if (v.is_number() && x.is_number()) {
      const double n = v.get<double>(), b = x.get<double>();
      if (k == "minimum") return n >= b;
      if (k == "maximum") return n <= b;
      if (k == "exclusiveMinimum") return n > b;
      if (k == "exclusiveMaximum") return n < b;
      if (k == "multipleOf") {
        if (!is_integer(v) || !is_integer(x) || b == 0) return std::nullopt;
        return std::fmod(n, b) == 0;
      }
    }
    if (v.is_number() && (k == "exclusiveMinimum" || k == "exclusiveMaximum")) return std::nullopt;  // draft 4 booleans
    if (v.is_string()) {
      const std::string& str = v.get_ref<const std::string&>();
      if (k == "minLength" && x.is_number()) return double(code_points(str)) >= x.get<double>();
      if (k == "maxLength" && x.is_number()) return double(code_points(str)) <= x.get<double>();
      if (k == "pattern") return x.is_string() ? search(x.get<std::string>(), str) : std::nullopt;
    }
    if (v.is_array()) return array_keyword(v, k, x, s, depth);
    if (v.is_object()) return object_keyword(v, k, x, s, depth);
    return true;  // a keyword for another type, an annotation, or one JSON Schema does not define
  }

  Result array_keyword(const json& v, const std::string& k, const json& x, const json& s, int depth) {
    if (k == "minItems" && x.is_number()) return double(v.size()) >= x.get<double>();
    if (k == "maxItems" && x.is_number()) return double(v.size()) <= x.get<double>();
    if (k == "uniqueItems") {
      if (x != true) return true;
      for (size_t i = 0; i < v.size(); ++i)
        for (size_t j = i + 1; j < v.size(); ++j)
          if (same(v[i], v[j])) return false;
      return true;
    }
    // `items` as one schema for every item; beside prefixItems, or as an array (draft 4
    // tuples), what it means depends on the draft: unknown.
    if (k == "prefixItems" || (k == "items" && (s.contains("prefixItems") || x.is_array()))) return std::nullopt;
    if (k == "items") {
      bool unknown = false;
      for (const auto& item : v) {
        const Result r = valid(item, x, depth + 1);
        if (r && !*r) return false;
        unknown |= !r;
      }
      return unknown ? std::nullopt : Result(true);
    }
    return true;
  }

  Result object_keyword(const json& v, const std::string& k, const json& x, const json& s, int depth) {
    if (k == "required") {
      if (!x.is_array()) return std::nullopt;
      for (const auto& r : x)
        if (!r.is_string() || !v.contains(r.get<std::string>())) return false;
      return true;
    }
    if (k == "minProperties" && x.is_number()) return double(v.size()) >= x.get<double>();
    if (k == "maxProperties" && x.is_number()) return double(v.size()) <= x.get<double>();
    if (k == "properties") {
      if (!x.is_object()) return std::nullopt;
      bool unknown = false;
      for (const auto& [name, sub] : x.items())
        if (v.contains(name)) {
          const Result r = valid(v[name], sub, depth + 1);
          if (r && !*r) return false;
          unknown |= !r;
        }
      return unknown ? std::nullopt : Result(true);
    }
    if (k == "patternProperties" || k == "additionalProperties") {
      // Each member: the patterns it matches, else additionalProperties when it is not a
      // listed property.
      const json props = s.value("properties", json::object());
      const json patterns = s.value("patternProperties", json::object());
      bool unknown = false;
      for (const auto& [name, member] : v.items()) {
        bool matched = false;
        for (const auto& [p, sub] : patterns.items()) {
          const Result m = search(p, name);
          if (!m) return std::nullopt;
          if (!*m) continue;
          matched = true;
          if (k != "patternProperties") continue;
          const Result r = valid(member, sub, depth + 1);
          if (r && !*r) return false;
          unknown |= !r;
        }
        if (k == "additionalProperties" && !matched && !(props.is_object() && props.contains(name))) {
          const Result r = valid(member, x, depth + 1);
          if (r && !*r) return false;
          unknown |= !r;
        }
      }
      return unknown ? std::nullopt : Result(true);
    }
    return true;
  }

  const json& root_;
};

}  // namespace

bool regex_is_small(const std::string& pattern) {
  if (pattern.size() > 256) return false;
  int64_t number = 0;
  bool counting = false;  // inside "{m,n}"
  for (char c : pattern) {
    if (c == '{') counting = true;
    else if (c == '}') counting = false;
    if (counting && c >= '0' && c <= '9') {
      number = number * 10 + (c - '0');
      if (number > 64) return false;
    } else {
      number = 0;
    }
  }
  return true;
}

std::optional<bool> value_is_valid(const json& value, const json& schema, const json& root) {
  return Validator(root).valid(value, schema, 0);
}

}  // namespace upg::grammar
