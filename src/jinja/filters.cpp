// The filters of jinja2 that chat templates use, with jinja2's arguments; tojson is
// transformers' (json.dumps with ensure_ascii=False, keys in their order).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "jinja/builtins.h"
#include "jinja/operators.h"
#include "jinja/text.h"

namespace upg::jinja {
namespace {

using Filter = Value (*)(const Value&, const CallArgs&, size_t);

std::optional<std::string> opt_string(const Value& v, std::string_view what) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  if (!v.is_string()) throw Problem(fmt::format("{} must be a string, not {}", what, type_name(v)));
  return v.str();
}

std::string text_of(const Value& v, size_t limit) { return to_str(v, limit); }

Value f_trim(const Value& v, const CallArgs& a, size_t limit) {
  a.check("trim", 1, {"chars"});
  return py_strip(text_of(v, limit), opt_string(a.get(0, "chars"), "trim chars"), true, true);
}

Value f_length(const Value& v, const CallArgs& a, size_t) {
  a.check("length", 0, {});
  return length(v);
}

Value f_tojson(const Value& v, const CallArgs& a, size_t limit) {
  a.check("tojson", 1, {"indent", "ensure_ascii", "sort_keys", "separators"});
  const Value indent = a.get(0, "indent");
  JsonStyle style;
  if (indent.is_int()) {
    style.indent = static_cast<int>(std::clamp<int64_t>(indent.as_int(), 0, 64));
  } else if (!indent.is_none() && !indent.is_undefined()) {
    throw Problem("tojson indent must be an integer");
  }
  style.ensure_ascii = truthy(a.get(99, "ensure_ascii", false));
  if (truthy(a.get(99, "sort_keys", false)) || !a.get(99, "separators", None{}).is_none())
    throw Problem("tojson supports its indent and ensure_ascii arguments only");
  return to_json(v, style, limit);
}

Value f_items(const Value& v, const CallArgs& a, size_t) {
  a.check("items", 0, {});
  if (v.is_undefined()) return List{};
  if (!v.is_dict() || v.dict().is_namespace) throw Problem("Can only get item pairs from a mapping.");
  List out;
  for (const auto& [k, e] : v.dict().entries) out.push_back(Value::make_tuple({Value(k), e}));
  return out;
}

Value f_first(const Value& v, const CallArgs& a, size_t) {
  a.check("first", 0, {});
  const auto items = iterate(v);
  return items.empty() ? Value(Undefined{"first"}) : items.front();
}

Value f_last(const Value& v, const CallArgs& a, size_t) {
  a.check("last", 0, {});
  const auto items = iterate(v);
  return items.empty() ? Value(Undefined{"last"}) : items.back();
}

// upper, lower, title, capitalize: a text function over str(value), no arguments.
template <std::string (*F)(std::string_view)>
Value text_filter(const Value& v, const CallArgs& a, size_t limit) {
  a.check("this filter", 0, {});
  return F(text_of(v, limit));
}

Value f_replace(const Value& v, const CallArgs& a, size_t limit) {
  a.check("replace", 3, {"old", "new", "count"});
  const Value from = a.get(0, "old"), to = a.get(1, "new"), count = a.get(2, "count", None{});
  if (!from.is_string() || !to.is_string()) throw Problem("replace takes two strings");
  if (!count.is_none() && !count.is_int()) throw Problem("replace count must be an integer");
  std::string out = py_replace(text_of(v, limit), from.str(), to.str(), count.is_none() ? -1 : count.as_int());
  if (out.size() > limit) throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
  return out;
}

Value f_join(const Value& v, const CallArgs& a, size_t limit) {
  a.check("join", 2, {"d", "attribute"});
  const Value sep = a.get(0, "d", ""), attr = a.get(1, "attribute", None{});
  const std::string s = to_str(sep, limit);
  std::string out;
  bool first = true;
  for (const Value& e : iterate(v)) {
    if (!first) out += s;
    first = false;
    out += to_str(attr.is_none() ? e : get_path(e, to_str(attr, limit)), limit);
    if (out.size() > limit) throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
  }
  return out;
}

Value f_default(const Value& v, const CallArgs& a, size_t) {
  a.check("default", 2, {"default_value", "boolean"});
  const bool boolean = truthy(a.get(1, "boolean", false));
  if (v.is_undefined() || (boolean && !truthy(v))) return a.get(0, "default_value", "");
  return v;
}

Value f_string(const Value& v, const CallArgs& a, size_t limit) {
  a.check("string", 0, {});
  return text_of(v, limit);
}

Value f_safe(const Value& v, const CallArgs& a, size_t) {
  a.check("safe", 0, {});
  return v;
}

// Python int(text): optional sign, digits, underscores between digits, around blanks.
std::optional<int64_t> parse_int(std::string_view text) {
  std::string s = py_strip(text, std::nullopt, true, true), digits;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) digits += s[i++];
  if (i >= s.size()) return std::nullopt;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      digits += s[i];
    } else if (s[i] != '_' || i + 1 >= s.size() || digits.empty()) {
      return std::nullopt;
    }
  }
  errno = 0;
  const long long r = std::strtoll(digits.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return r;
}

std::optional<double> parse_float(std::string_view text) {
  const std::string s = py_strip(text, std::nullopt, true, true);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

Value f_int(const Value& v, const CallArgs& a, size_t) {
  a.check("int", 2, {"default", "base"});
  const Value fallback = a.get(0, "default", 0);
  if (v.is_int() || v.is_bool()) return v.as_int();
  if (v.is_float()) {
    const double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return static_cast<int64_t>(d);
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.str())) return *i;
    if (auto d = parse_float(v.str()); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) return static_cast<int64_t>(*d);
  }
  return fallback;
}

Value f_float(const Value& v, const CallArgs& a, size_t) {
  a.check("float", 1, {"default"});
  if (v.is_number()) return v.as_double();
  if (v.is_string())
    if (auto d = parse_float(v.str())) return *d;
  return a.get(0, "default", 0.0);
}

Value f_list(const Value& v, const CallArgs& a, size_t) {
  a.check("list", 0, {});
  return iterate(v);
}

Value f_abs(const Value& v, const CallArgs& a, size_t) {
  a.check("abs", 0, {});
  if (v.is_float()) return std::fabs(v.as_double());
  if (v.is_int() || v.is_bool()) return v.as_int() < 0 ? negate(v) : Value(v.as_int());
  throw Problem(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
}

Value f_reverse(const Value& v, const CallArgs& a, size_t) {
  a.check("reverse", 0, {});
  if (v.is_string()) return slice(v, std::nullopt, std::nullopt, -1);
  auto items = iterate(v);
  std::reverse(items.begin(), items.end());
  return items;
}

// map(attribute=...) or map('filter', args...).
Value f_map(const Value& v, const CallArgs& a, size_t limit) {
  List out;
  const Value attr = a.get(99, "attribute");
  if (!attr.is_undefined()) {
    const Value fallback = a.get(99, "default");
    for (const Value& e : iterate(v)) {
      Value r = get_path(e, to_str(attr, limit));
      out.push_back(r.is_undefined() && !fallback.is_undefined() ? fallback : r);
    }
    return out;
  }
  if (a.positional.empty() || !a.positional[0].is_string()) throw Problem("map needs a filter name or attribute=");
  const std::string name = a.positional[0].str();
  if (!known_filter(name)) throw Problem(fmt::format("unknown filter '{}'", name));
  CallArgs rest{{a.positional.begin() + 1, a.positional.end()}, a.named};
  for (const Value& e : iterate(v)) out.push_back(apply_filter(name, e, rest, limit));
  return out;
}

// select/reject (test on the item) and selectattr/rejectattr (on an attribute of it).
Value select(const Value& v, const CallArgs& a, size_t limit, bool on_attr, bool keep) {
  size_t next = 0;
  std::string attr;
  if (on_attr) {
    if (a.positional.empty()) throw Problem("selectattr needs an attribute name");
    attr = to_str(a.positional[next++], limit);
  }
  std::string test;
  if (next < a.positional.size()) test = to_str(a.positional[next++], limit);
  if (!test.empty() && !known_test(test)) throw Problem(fmt::format("unknown test '{}'", test));
  CallArgs rest{{a.positional.begin() + static_cast<std::ptrdiff_t>(next), a.positional.end()}, a.named};
  List out;
  for (const Value& e : iterate(v)) {
    const Value subject = on_attr ? get_path(e, attr) : e;
    const bool pass = test.empty() ? truthy(subject) : apply_test(test, subject, rest);
    if (pass == keep) out.push_back(e);
  }
  return out;
}

Value f_select(const Value& v, const CallArgs& a, size_t l) { return select(v, a, l, false, true); }
Value f_reject(const Value& v, const CallArgs& a, size_t l) { return select(v, a, l, false, false); }
Value f_selectattr(const Value& v, const CallArgs& a, size_t l) { return select(v, a, l, true, true); }
Value f_rejectattr(const Value& v, const CallArgs& a, size_t l) { return select(v, a, l, true, false); }

// Sort keys compare case-insensitively unless asked (jinja2's ignore_case).
Value sort_key(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(py_lower(v.str())) : v;
}

Value f_dictsort(const Value& v, const CallArgs& a, size_t) {
  a.check("dictsort", 3, {"case_sensitive", "by", "reverse"});
  const bool cs = truthy(a.get(0, "case_sensitive", false)), rev = truthy(a.get(2, "reverse", false));
  const Value by = a.get(1, "by", "key");
  if (!v.is_dict() || v.dict().is_namespace) throw Problem("dictsort needs a mapping");
  const size_t pos = by.is_string() && by.str() == "value" ? 1 : 0;
  List items;
  for (const auto& [k, e] : v.dict().entries) items.push_back(Value::make_tuple({Value(k), e}));
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    const int c = compare(sort_key(x.list()[pos], cs), sort_key(y.list()[pos], cs));
    return rev ? c > 0 : c < 0;
  });
  return items;
}

Value f_sort(const Value& v, const CallArgs& a, size_t limit) {
  a.check("sort", 3, {"reverse", "case_sensitive", "attribute"});
  const bool rev = truthy(a.get(0, "reverse", false)), cs = truthy(a.get(1, "case_sensitive", false));
  const Value attr = a.get(2, "attribute", None{});
  List items = iterate(v);
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    const Value kx = attr.is_none() ? x : get_path(x, to_str(attr, limit));
    const Value ky = attr.is_none() ? y : get_path(y, to_str(attr, limit));
    const int c = compare(sort_key(kx, cs), sort_key(ky, cs));
    return rev ? c > 0 : c < 0;
  });
  return items;
}

Value f_unique(const Value& v, const CallArgs& a, size_t) {
  a.check("unique", 1, {"case_sensitive"});
  const bool cs = truthy(a.get(0, "case_sensitive", false));
  List out, keys;
  for (const Value& e : iterate(v)) {
    const Value k = sort_key(e, cs);
    if (std::none_of(keys.begin(), keys.end(), [&](const Value& s) { return equals(s, k); })) {
      keys.push_back(k);
      out.push_back(e);
    }
  }
  return out;
}

// Markup.striptags: drop comments and tags, then collapse whitespace. (Entities are
// left as written; chat templates strip plain text.)
Value f_striptags(const Value& v, const CallArgs& a, size_t limit) {
  a.check("striptags", 0, {});
  const std::string s = text_of(v, limit);
  std::string kept;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "<!--") == 0) {
      const size_t e = s.find("-->", i + 4);
      if (e != std::string::npos) {
        i = e + 3;
        continue;
      }
    }
    if (s[i] == '<') {
      const size_t e = s.find('>', i + 1);
      if (e != std::string::npos) {
        i = e + 1;
        continue;
      }
    }
    kept += s[i++];
  }
  std::string out;
  for (const std::string& w : py_split(kept, std::nullopt, -1)) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

// jinja2's indent: every line but the first (and blank ones unless `blank`) gets the
// indent; a trailing newline of the text is dropped by splitting as Python's splitlines.
Value f_indent(const Value& v, const CallArgs& a, size_t limit) {
  a.check("indent", 3, {"width", "first", "blank"});
  const Value width = a.get(0, "width", 4);
  std::string pad;
  if (width.is_string()) {
    pad = width.str();
  } else if (width.is_int()) {
    pad.assign(static_cast<size_t>(std::clamp<int64_t>(width.as_int(), 0, 256)), ' ');
  } else {
    throw Problem("indent width must be an integer or a string");
  }
  const bool first = truthy(a.get(1, "first", false)), blank = truthy(a.get(2, "blank", false));
  const std::string s = text_of(v, limit) + "\n";
  std::vector<std::string> lines;
  std::string line;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' || s[i] == '\r') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      lines.push_back(std::move(line));
      line.clear();
    } else {
      line += s[i];
    }
  }
  if (!line.empty()) lines.push_back(std::move(line));
  std::string out = lines.empty() ? "" : lines[0];
  for (size_t i = 1; i < lines.size(); ++i) {
    out += '\n';
    if (blank || !lines[i].empty()) out += pad;
    out += lines[i];
    if (out.size() > limit) throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
  }
  if (first) out = pad + out;
  return out;
}

struct Entry {
  std::string_view name;
  Filter fn;
};

constexpr std::array kFilters = {
    Entry{"abs", f_abs},           Entry{"capitalize", text_filter<py_capitalize>}, Entry{"count", f_length},
    Entry{"d", f_default},         Entry{"default", f_default},       Entry{"dictsort", f_dictsort},
    Entry{"first", f_first},       Entry{"float", f_float},           Entry{"indent", f_indent},           Entry{"int", f_int},
    Entry{"items", f_items},       Entry{"join", f_join},             Entry{"last", f_last},
    Entry{"length", f_length},     Entry{"list", f_list},             Entry{"lower", text_filter<py_lower>},
    Entry{"map", f_map},           Entry{"reject", f_reject},         Entry{"rejectattr", f_rejectattr},
    Entry{"replace", f_replace},   Entry{"reverse", f_reverse},       Entry{"safe", f_safe},
    Entry{"select", f_select},     Entry{"selectattr", f_selectattr}, Entry{"sort", f_sort},
    Entry{"string", f_string},     Entry{"striptags", f_striptags},   Entry{"title", text_filter<jinja_title>},
    Entry{"tojson", f_tojson},     Entry{"trim", f_trim},             Entry{"unique", f_unique},
    Entry{"upper", text_filter<py_upper>},
};

const Entry* find_filter(std::string_view name) { return find_named(kFilters, name); }

}  // namespace

bool known_filter(std::string_view name) { return find_filter(name) != nullptr; }

Value apply_filter(std::string_view name, const Value& subject, const CallArgs& args, size_t limit) {
  const Entry* e = find_filter(name);
  if (!e) throw Problem(fmt::format("unknown filter '{}'", name));
  return e->fn(subject, args, limit);
}

}  // namespace upg::jinja
