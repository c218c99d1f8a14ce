// The Python methods of str, dict and list that chat templates call. Methods that
// change a list or dict (append, pop, update, ...) are refused, as jinja2's
// ImmutableSandboxedEnvironment (transformers' environment) refuses them.
#include <fmt/format.h>

#include <algorithm>

#include "jinja/builtins.h"
#include "jinja/text.h"

namespace upg::jinja {
namespace {

constexpr std::string_view kStrMethods[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith",
                                            "endswith", "upper", "lower", "title", "capitalize", "replace",
                                            "find", "count", "join"};
constexpr std::string_view kDictMethods[] = {"items", "keys", "values", "get"};
constexpr std::string_view kMutators[] = {"append", "extend", "insert", "pop", "remove", "clear", "update",
                                          "setdefault", "sort", "reverse", "popitem"};

bool in(std::string_view name, const auto& names) { return std::find(std::begin(names), std::end(names), name) != std::end(names); }

std::optional<std::string> opt_chars(const Value& v) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  if (!v.is_string()) throw Problem(fmt::format("expected a string argument, not {}", type_name(v)));
  return v.str();
}

long opt_long(const Value& v, long fallback) {
  if (v.is_none() || v.is_undefined()) return fallback;
  if (!v.is_int()) throw Problem(fmt::format("expected an integer argument, not {}", type_name(v)));
  return static_cast<long>(v.as_int());
}

bool affix(const std::string& s, const Value& arg, bool prefix) {
  const auto one = [&](const Value& a) {
    if (!a.is_string()) throw Problem("startswith/endswith take a string or a tuple of strings");
    const std::string& x = a.str();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (arg.is_list()) return std::any_of(arg.list().begin(), arg.list().end(), one);
  return one(arg);
}

Value str_method(const std::string& s, std::string_view name, const CallArgs& a, size_t limit) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    a.check(name, 1, {"chars"});
    return py_strip(s, opt_chars(a.get(0, "chars")), name != "rstrip", name != "lstrip");
  }
  if (name == "split" || name == "rsplit") {
    a.check(name, 2, {"sep", "maxsplit"});
    const auto sep = opt_chars(a.get(0, "sep"));
    if (sep && sep->empty()) throw Problem("empty separator");
    const long maxsplit = opt_long(a.get(1, "maxsplit"), -1);
    if (name == "rsplit" && maxsplit >= 0) throw Problem("rsplit with maxsplit is not supported");
    List out;
    for (std::string& part : py_split(s, sep, maxsplit)) out.emplace_back(std::move(part));
    return out;
  }
  if (name == "startswith" || name == "endswith") {
    if (a.positional.size() != 1 || !a.named.empty()) throw Problem(fmt::format("{} takes one argument", name));
    return affix(s, a.positional[0], name == "startswith");
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    a.check(name, 0, {});
    return name == "upper" ? py_upper(s) : name == "lower" ? py_lower(s) : name == "title" ? py_title(s) : py_capitalize(s);
  }
  if (name == "replace") {
    a.check(name, 3, {"count"});
    const Value from = a.get(0, ""), to = a.get(1, "");
    if (!from.is_string() || !to.is_string()) throw Problem("replace takes two strings");
    std::string out = py_replace(s, from.str(), to.str(), opt_long(a.get(2, "count"), -1));
    if (out.size() > limit) throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
    return out;
  }
  if (name == "find" || name == "count") {
    a.check(name, 1, {});
    const Value sub = a.get(0, "");
    if (!sub.is_string()) throw Problem(fmt::format("{} takes a string", name));
    if (name == "find") {
      const size_t at = s.find(sub.str());
      return at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(count_code_points(std::string_view(s).substr(0, at)));
    }
    if (sub.str().empty()) return count_code_points(s) + 1;
    int64_t n = 0;
    for (size_t at = s.find(sub.str()); at != std::string::npos; at = s.find(sub.str(), at + sub.str().size())) ++n;
    return n;
  }
  // join
  a.check(name, 1, {});
  std::string out;
  bool first = true;
  for (const Value& e : a.positional.empty() ? List{} : iterate(a.positional[0])) {
    if (!e.is_string()) throw Problem(fmt::format("join expects str items, found {}", type_name(e)));
    if (!first) out += s;
    first = false;
    out += e.str();
    if (out.size() > limit) throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
  }
  return out;
}

Value dict_method(const Dict& d, std::string_view name, const CallArgs& a) {
  if (name == "get") {
    a.check(name, 2, {});
    if (a.positional.empty()) throw Problem("get takes a key");
    const Value& key = a.positional[0];
    if (key.is_string())
      if (const Value* v = d.find(key.str())) return *v;
    return a.get(1, "", None{});
  }
  a.check(name, 0, {});
  List out;
  for (const auto& [k, v] : d.entries) {
    if (name == "items") {
      out.push_back(Value::make_tuple({Value(k), v}));
    } else {
      out.push_back(name == "keys" ? Value(k) : v);
    }
  }
  return out;
}

}  // namespace

bool has_method(const Value& obj, std::string_view name) {
  if (obj.is_string()) return in(name, kStrMethods);
  if (obj.is_dict() && !obj.dict().is_namespace) return in(name, kDictMethods) || in(name, kMutators);
  if (obj.is_list()) return in(name, kMutators);
  return false;
}

std::optional<Value> call_method(const Value& obj, std::string_view name, const CallArgs& args, size_t limit) {
  if (!has_method(obj, name)) return std::nullopt;
  if (in(name, kMutators) && !(obj.is_string()))
    throw Problem(fmt::format("{}.{}() is refused: templates may not change a {} (jinja2's immutable sandbox)",
                              type_name(obj), name, type_name(obj)));
  if (obj.is_string()) return str_method(obj.str(), name, args, limit);
  return dict_method(obj.dict(), name, args);
}

}  // namespace upg::jinja
