#include "jinja/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "jinja/text.h"

namespace upg::jinja {
namespace {

constexpr int kMaxJsonNesting = 128;

void check_limit(const std::string& out, size_t limit) {
  if (out.size() > limit) throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
}

// json.dumps string escaping: '"', '\\' and control characters, and with ensure_ascii
// every non-ASCII code point as \uXXXX (UTF-16 surrogate pairs past U+FFFF).
void append_json_string(std::string_view s, std::string& out, bool ensure_ascii) {
  out += '"';
  for (std::string_view cp : split_code_points(s)) {
    if (ensure_ascii && static_cast<unsigned char>(cp[0]) >= 0x80) {
      uint32_t u = code_point(cp);
      if (u >= 0x10000) {
        u -= 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (u >> 10), 0xDC00 + (u & 0x3FF));
      } else {
        out += fmt::format("\\u{:04x}", u);
      }
      continue;
    }
    const char c = cp[0];
    if (cp.size() > 1) {
      out += cp;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// Python's repr of a str: single quotes unless the text has ' and no ".
void append_string_repr(std::string_view s, std::string& out) {
  const char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  out += q;
  for (char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  out += q;
}

void append_json(const Value& v, const JsonStyle& style, int level, std::string& out, size_t limit) {
  const int indent = style.indent;
  check_limit(out, limit);
  const auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * lvl, ' ');
  };
  if (v.is_undefined()) throw Problem("tojson of an undefined value");
  if (v.is_none()) {
    out += "null";
  } else if (v.is_bool()) {
    out += std::get<bool>(v.v) ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_float()) {
    const double d = v.as_double();
    out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : float_repr(d);
  } else if (v.is_string()) {
    append_json_string(v.str(), out, style.ensure_ascii);
  } else if (v.is_list()) {
    const List& l = v.list();
    if (l.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < l.size(); ++i) {
      if (i) out += indent >= 0 ? "," : ", ";
      if (indent >= 0) newline(level + 1);
      append_json(l[i], style, level + 1, out, limit);
    }
    if (indent >= 0) newline(level);
    out += ']';
  } else if (v.is_dict()) {
    const Dict& d = v.dict();
    if (d.is_namespace) throw Problem("tojson of a namespace (not JSON serializable)");
    if (d.entries.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    for (size_t i = 0; i < d.entries.size(); ++i) {
      if (i) out += indent >= 0 ? "," : ", ";
      if (indent >= 0) newline(level + 1);
      append_json_string(d.entries[i].first, out, style.ensure_ascii);
      out += ": ";
      append_json(d.entries[i].second, style, level + 1, out, limit);
    }
    if (indent >= 0) newline(level);
    out += '}';
  } else {
    throw Problem("tojson of a function (not JSON serializable)");
  }
}

Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxJsonNesting) throw Problem(fmt::format("context nests deeper than {} levels", kMaxJsonNesting));
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return None{};
    case nlohmann::ordered_json::value_t::boolean: return j.get<bool>();
    case nlohmann::ordered_json::value_t::number_integer: return j.get<int64_t>();
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return static_cast<double>(u);
      return static_cast<int64_t>(u);
    }
    case nlohmann::ordered_json::value_t::number_float: return j.get<double>();
    case nlohmann::ordered_json::value_t::string: return j.get<std::string>();
    case nlohmann::ordered_json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (const auto& e : j) l.push_back(from_json_at(e, depth + 1));
      return l;
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<std::string, Value>> entries;
      entries.reserve(j.size());
      for (const auto& [k, e] : j.items()) entries.emplace_back(k, from_json_at(e, depth + 1));
      return make_dict(std::move(entries));
    }
    default: throw Problem("context holds a value JSON cannot express (binary)");
  }
}

}  // namespace

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(std::string key, Value value) {
  for (auto& [k, v] : entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

Value make_dict(std::vector<std::pair<std::string, Value>> entries, bool is_namespace) {
  auto d = std::make_shared<Dict>();
  for (auto& [k, v] : entries) d->set(std::move(k), std::move(v));
  d->is_namespace = is_namespace;
  return Value(std::move(d));
}

Value CallArgs::get(size_t index, std::string_view name, Value fallback) const {
  if (index < positional.size()) return positional[index];
  for (const auto& [k, v] : named)
    if (k == name) return v;
  return fallback;
}

void CallArgs::check(std::string_view what, size_t max, std::initializer_list<std::string_view> names) const {
  if (positional.size() > max)
    throw Problem(fmt::format("{} takes at most {} positional argument(s), {} given", what, max, positional.size()));
  for (const auto& [k, v] : named)
    if (std::find(names.begin(), names.end(), k) == names.end())
      throw Problem(fmt::format("{} got an unexpected argument '{}'", what, k));
}

std::string_view type_name(const Value& v) {
  static constexpr std::string_view kNames[] = {"Undefined", "NoneType", "bool", "int", "float",
                                                "str",       "list",     "dict", "function"};
  if (v.is_dict() && v.dict().is_namespace) return "Namespace";
  return kNames[v.v.index()];
}

bool truthy(const Value& v) {
  if (v.is_undefined() || v.is_none()) return false;
  if (v.is_bool()) return std::get<bool>(v.v);
  if (v.is_int()) return v.as_int() != 0;
  if (v.is_float()) return v.as_double() != 0.0;
  if (v.is_string()) return !v.str().empty();
  if (v.is_list()) return !v.list().empty();
  if (v.is_dict()) return v.dict().is_namespace || !v.dict().entries.empty();
  return true;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.v.index() != b.v.index()) return false;
  if (a.is_undefined() || a.is_none()) return true;
  if (a.is_string()) return a.str() == b.str();
  if (a.is_list()) {
    const List &x = a.list(), &y = b.list();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (!equals(x[i], y[i])) return false;
    return true;
  }
  if (a.is_dict()) {
    const Dict &x = a.dict(), &y = b.dict();
    if (x.is_namespace || y.is_namespace) return &x == &y;
    if (x.entries.size() != y.entries.size()) return false;
    for (const auto& [k, v] : x.entries) {
      const Value* o = y.find(k);
      if (!o || !equals(v, *o)) return false;
    }
    return true;
  }
  return std::get<Value::FunctionPtr>(a.v) == std::get<Value::FunctionPtr>(b.v);
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  // UTF-8 byte order is code point order.
  if (a.is_string() && b.is_string()) return a.str().compare(b.str()) < 0 ? -1 : a.str() == b.str() ? 0 : 1;
  if (a.is_list() && b.is_list()) {
    const List &x = a.list(), &y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw Problem(fmt::format("'<' not supported between '{}' and '{}'", type_name(a), type_name(b)));
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // fmt's shortest round-trip form matches Python's repr (exponent below 1e-4 and from
  // 1e16 on) except that Python marks whole values with ".0".
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

void append_repr(const Value& v, std::string& out, size_t limit) {
  check_limit(out, limit);
  if (v.is_string()) {
    append_string_repr(v.str(), out);
  } else if (v.is_list()) {
    out += v.tuple ? '(' : '[';
    bool first = true;
    for (const Value& e : v.list()) {
      if (!first) out += ", ";
      first = false;
      append_repr(e, out, limit);
    }
    if (v.tuple && v.list().size() == 1) out += ',';
    out += v.tuple ? ')' : ']';
  } else if (v.is_dict() && !v.dict().is_namespace) {
    out += '{';
    bool first = true;
    for (const auto& [k, e] : v.dict().entries) {
      if (!first) out += ", ";
      first = false;
      append_string_repr(k, out);
      out += ": ";
      append_repr(e, out, limit);
    }
    out += '}';
  } else {
    out += to_str(v, limit);
  }
}

std::string to_str(const Value& v, size_t limit) {
  if (v.is_undefined()) return "";
  if (v.is_none()) return "None";
  if (v.is_bool()) return std::get<bool>(v.v) ? "True" : "False";
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_float()) return float_repr(v.as_double());
  if (v.is_string()) return v.str();
  if (v.is_function()) return "<function>";
  if (v.is_dict() && v.dict().is_namespace) return "<Namespace>";
  std::string out;
  append_repr(v, out, limit);
  check_limit(out, limit);
  return out;
}

std::string to_json(const Value& v, const JsonStyle& style, size_t limit) {
  std::string out;
  append_json(v, style, 0, out, limit);
  check_limit(out, limit);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }

size_t length(const Value& v) {
  if (v.is_string()) return count_code_points(v.str());
  if (v.is_list()) return v.list().size();
  if (v.is_dict() && !v.dict().is_namespace) return v.dict().entries.size();
  if (v.is_undefined()) return 0;
  throw Problem(fmt::format("object of type '{}' has no len()", type_name(v)));
}

std::vector<Value> iterate(const Value& v) {
  if (v.is_list()) return v.list();
  if (v.is_undefined()) return {};
  std::vector<Value> out;
  if (v.is_string()) {
    for (std::string_view c : split_code_points(v.str())) out.emplace_back(c);
  } else if (v.is_dict() && !v.dict().is_namespace) {
    for (const auto& [k, e] : v.dict().entries) out.emplace_back(k);
  } else {
    throw Problem(fmt::format("'{}' object is not iterable", type_name(v)));
  }
  return out;
}

size_t weight(const Value& v) {
  if (v.is_string()) return v.str().size();
  size_t w = 0;
  if (v.is_list()) {
    for (const Value& e : v.list()) w += e.is_string() ? e.str().size() + 1 : 1;
  } else if (v.is_dict()) {
    for (const auto& [k, e] : v.dict().entries) w += k.size() + (e.is_string() ? e.str().size() + 1 : 1);
  }
  return w;
}

}  // namespace upg::jinja
