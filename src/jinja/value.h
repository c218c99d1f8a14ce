#pragma once
// The values a template computes with, modelled on the Python objects jinja2 sees:
// undefined, None, bool, int, float, str, list, dict (insertion-ordered, string keys)
// and callables (macros, globals). Lists and dicts are shared, as in Python; only a
// namespace() may change after it is made (the sandbox keeps the rest immutable).
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace upg::jinja {

// A failed operation; the interpreter adds the template name, line and column.
class Problem : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Value;
struct CallArgs;
using List = std::vector<Value>;
struct Dict;
using Function = std::function<Value(CallArgs&)>;

struct Undefined {
  std::string name;  // what was looked up, for messages
};
struct None {};

struct Value {
  using ListPtr = std::shared_ptr<const List>;
  using DictPtr = std::shared_ptr<Dict>;
  using FunctionPtr = std::shared_ptr<const Function>;
  std::variant<Undefined, None, bool, int64_t, double, std::string, ListPtr, DictPtr, FunctionPtr> v;
  // A list that Python would hold as a tuple (dict items, "(a, b)"): it prints as
  // "(a, b)"; everything else treats it as a list.
  bool tuple = false;

  Value() = default;
  Value(None) : v(None{}) {}
  Value(Undefined u) : v(std::move(u)) {}
  Value(bool b) : v(b) {}
  Value(int i) : v(int64_t{i}) {}
  Value(int64_t i) : v(i) {}
  Value(size_t i) : v(static_cast<int64_t>(i)) {}
  Value(double d) : v(d) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(std::string_view s) : v(std::string(s)) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(List l) : v(std::make_shared<const List>(std::move(l))) {}
  Value(DictPtr d) : v(std::move(d)) {}
  Value(Function f) : v(std::make_shared<const Function>(std::move(f))) {}

  static Value make_tuple(List items) {
    Value t(std::move(items));
    t.tuple = true;
    return t;
  }

  bool is_undefined() const { return std::holds_alternative<Undefined>(v); }
  bool is_none() const { return std::holds_alternative<None>(v); }
  bool is_bool() const { return std::holds_alternative<bool>(v); }
  bool is_int() const { return std::holds_alternative<int64_t>(v); }
  bool is_float() const { return std::holds_alternative<double>(v); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return std::holds_alternative<std::string>(v); }
  bool is_list() const { return std::holds_alternative<ListPtr>(v); }
  bool is_dict() const { return std::holds_alternative<DictPtr>(v); }
  bool is_function() const { return std::holds_alternative<FunctionPtr>(v); }

  const std::string& str() const { return std::get<std::string>(v); }
  const List& list() const { return *std::get<ListPtr>(v); }
  Dict& dict() const { return *std::get<DictPtr>(v); }
  int64_t as_int() const { return is_bool() ? int64_t{std::get<bool>(v)} : std::get<int64_t>(v); }  // int or bool
  double as_double() const { return is_float() ? std::get<double>(v) : static_cast<double>(as_int()); }
};

struct Dict {
  std::vector<std::pair<std::string, Value>> entries;
  bool is_namespace = false;  // namespace(): attributes may be set, not a mapping

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

Value make_dict(std::vector<std::pair<std::string, Value>> entries, bool is_namespace = false);

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;

  // The argument at `index` or named `name`, else `fallback`.
  Value get(size_t index, std::string_view name, Value fallback = {}) const;
  // Throws when more than `max` positional arguments or an unknown name was passed.
  void check(std::string_view what, size_t max, std::initializer_list<std::string_view> names) const;
};

// Python type name for messages ("str", "list", "NoneType", ...).
std::string_view type_name(const Value& v);

bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python's ordering: numbers with numbers, strings by code point, lists element-wise.
// Throws Problem for other pairs.
int compare(const Value& a, const Value& b);

// Python's str(); an undefined value prints as "". Throws Problem past `limit` bytes.
std::string to_str(const Value& v, size_t limit);
// Python's repr() (how str() shows list and dict items).
void append_repr(const Value& v, std::string& out, size_t limit);
// json.dumps(v, ensure_ascii=..., indent=...) (transformers' tojson).
struct JsonStyle {
  int indent = -1;  // < 0: one line
  bool ensure_ascii = false;
};
std::string to_json(const Value& v, const JsonStyle& style, size_t limit);
// Python's repr of a float: the shortest text that reads back, with ".0" on whole values.
std::string float_repr(double d);

// A JSON value as a template value (objects keep their key order); nesting is bounded.
Value from_json(const nlohmann::ordered_json& j);

// Python's len(): code points of a string, items of a list or dict.
size_t length(const Value& v);
// Python's iter(): list items, dict keys, string code points; undefined is empty.
std::vector<Value> iterate(const Value& v);
// Bytes, list items or dict entries a value holds at its top level (for the work budget).
size_t weight(const Value& v);

}  // namespace upg::jinja
