// jinja2's tests ("x is defined", "x is not none", ...), with its definitions of which
// Python types pass.
#include <fmt/format.h>

#include <array>

#include "jinja/builtins.h"
#include "jinja/operators.h"

namespace upg::jinja {
namespace {

using Test = bool (*)(const Value&, const CallArgs&);

const Value& arg(const CallArgs& a, std::string_view test) {
  if (a.positional.empty()) throw Problem(fmt::format("test '{}' needs an argument", test));
  return a.positional[0];
}

bool t_defined(const Value& v, const CallArgs&) { return !v.is_undefined(); }
bool t_undefined(const Value& v, const CallArgs&) { return v.is_undefined(); }
bool t_none(const Value& v, const CallArgs&) { return v.is_none(); }
bool t_string(const Value& v, const CallArgs&) { return v.is_string(); }
bool t_number(const Value& v, const CallArgs&) { return v.is_number(); }
bool t_integer(const Value& v, const CallArgs&) { return v.is_int(); }
bool t_float(const Value& v, const CallArgs&) { return v.is_float(); }
bool t_boolean(const Value& v, const CallArgs&) { return v.is_bool(); }
bool t_true(const Value& v, const CallArgs&) { return v.is_bool() && std::get<bool>(v.v); }
bool t_false(const Value& v, const CallArgs&) { return v.is_bool() && !std::get<bool>(v.v); }
bool t_mapping(const Value& v, const CallArgs&) { return v.is_dict() && !v.dict().is_namespace; }
bool t_callable(const Value& v, const CallArgs&) { return v.is_function(); }
// Undefined iterates as empty in jinja2; str, list and dict are sequences.
bool t_iterable(const Value& v, const CallArgs&) { return v.is_undefined() || v.is_string() || v.is_list() || t_mapping(v, {}); }
bool t_sequence(const Value& v, const CallArgs&) { return v.is_string() || v.is_list() || t_mapping(v, {}); }
bool t_odd(const Value& v, const CallArgs&) {
  if (!v.is_int() && !v.is_bool()) throw Problem("test 'odd' needs an integer");
  return v.as_int() % 2 != 0;
}
bool t_even(const Value& v, const CallArgs& a) { return !t_odd(v, a); }
bool t_divisibleby(const Value& v, const CallArgs& a) {
  const Value& n = arg(a, "divisibleby");
  if (!v.is_number() || !n.is_number()) throw Problem("test 'divisibleby' needs numbers");
  const Value r = binary_op("%", v, n, 0);
  return r.as_double() == 0;
}
bool t_eq(const Value& v, const CallArgs& a) { return equals(v, arg(a, "eq")); }
bool t_ne(const Value& v, const CallArgs& a) { return !equals(v, arg(a, "ne")); }
bool t_lt(const Value& v, const CallArgs& a) { return compare(v, arg(a, "lt")) < 0; }
bool t_le(const Value& v, const CallArgs& a) { return compare(v, arg(a, "le")) <= 0; }
bool t_gt(const Value& v, const CallArgs& a) { return compare(v, arg(a, "gt")) > 0; }
bool t_ge(const Value& v, const CallArgs& a) { return compare(v, arg(a, "ge")) >= 0; }
bool t_in(const Value& v, const CallArgs& a) { return contains(arg(a, "in"), v); }
bool t_sameas(const Value& v, const CallArgs& a) {
  const Value& o = arg(a, "sameas");
  // Identity: the singletons compare by value, containers by address.
  if (v.is_list() && o.is_list()) return &v.list() == &o.list();
  if (v.is_dict() && o.is_dict()) return &v.dict() == &o.dict();
  return v.v.index() == o.v.index() && (v.is_none() || v.is_undefined() || ((v.is_bool()) && equals(v, o)));
}
bool t_lower(const Value& v, const CallArgs&) {
  return v.is_string() && v.str().find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string::npos &&
         v.str().find_first_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos;
}
bool t_upper(const Value& v, const CallArgs&) {
  return v.is_string() && v.str().find_first_of("abcdefghijklmnopqrstuvwxyz") == std::string::npos &&
         v.str().find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos;
}

struct Entry {
  std::string_view name;
  Test fn;
};

constexpr std::array kTests = {
    Entry{"boolean", t_boolean}, Entry{"callable", t_callable}, Entry{"defined", t_defined},
    Entry{"divisibleby", t_divisibleby}, Entry{"eq", t_eq}, Entry{"equalto", t_eq},
    Entry{"==", t_eq},           Entry{"even", t_even},         Entry{"false", t_false},
    Entry{"float", t_float},     Entry{"ge", t_ge},             Entry{"gt", t_gt},
    Entry{"greaterthan", t_gt},  Entry{"in", t_in},             Entry{"integer", t_integer},
    Entry{"iterable", t_iterable}, Entry{"le", t_le},           Entry{"lower", t_lower},
    Entry{"lt", t_lt},           Entry{"lessthan", t_lt},       Entry{"mapping", t_mapping},
    Entry{"ne", t_ne},           Entry{"!=", t_ne},             Entry{"none", t_none},
    Entry{"number", t_number},   Entry{"odd", t_odd},           Entry{"sameas", t_sameas},
    Entry{"sequence", t_sequence}, Entry{"string", t_string},   Entry{"true", t_true},
    Entry{"undefined", t_undefined}, Entry{"upper", t_upper},
};

const Entry* find_test(std::string_view name) { return find_named(kTests, name); }

}  // namespace

bool known_test(std::string_view name) { return find_test(name) != nullptr; }

bool apply_test(std::string_view name, const Value& subject, const CallArgs& args) {
  const Entry* e = find_test(name);
  if (!e) throw Problem(fmt::format("unknown test '{}'", name));
  return e->fn(subject, args);
}

}  // namespace upg::jinja
