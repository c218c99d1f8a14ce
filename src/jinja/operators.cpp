#include "jinja/operators.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "jinja/text.h"

namespace upg::jinja {
namespace {

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  throw Problem(fmt::format("unsupported operand types for {}: '{}' and '{}'", op, type_name(a), type_name(b)));
}

void check_undefined(const Value& v) {
  if (v.is_undefined()) throw Problem(fmt::format("'{}' is undefined", std::get<Undefined>(v.v).name));
}

[[noreturn]] void overflow() { throw Problem("integer overflow"); }

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported(op, a, b);
  const bool ints = !a.is_float() && !b.is_float();
  if (op == "/") {
    if (b.as_double() == 0) throw Problem("division by zero");
    return a.as_double() / b.as_double();
  }
  if (ints) {
    const int64_t x = a.as_int(), y = b.as_int();
    int64_t r = 0;
    if (op == "+") {
      if (__builtin_add_overflow(x, y, &r)) overflow();
      return r;
    }
    if (op == "-") {
      if (__builtin_sub_overflow(x, y, &r)) overflow();
      return r;
    }
    if (op == "*") {
      if (__builtin_mul_overflow(x, y, &r)) overflow();
      return r;
    }
    if (op == "//" || op == "%") {
      if (y == 0) throw Problem("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) throw Problem("integer overflow");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {  // Python floors
        --q;
        m += y;
      }
      return op == "//" ? q : m;
    }
    if (op == "**") {
      if (y < 0) return std::pow(static_cast<double>(x), static_cast<double>(y));
      if (x == 0) return int64_t{y == 0 ? 1 : 0};
      if (x == 1) return int64_t{1};
      if (x == -1) return int64_t{y % 2 == 0 ? 1 : -1};
      int64_t result = 1;  // |x| >= 2 overflows within 63 steps
      for (int64_t k = 0; k < y; ++k) {
        if (__builtin_mul_overflow(result, x, &result)) throw Problem("integer overflow");
      }
      return result;
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return x + y;
  if (op == "-") return x - y;
  if (op == "*") return x * y;
  if (op == "**") return std::pow(x, y);
  if (y == 0) throw Problem("float division or modulo by zero");
  const double q = std::floor(x / y);
  return op == "//" ? q : x - q * y;
}

Value repeat(const Value& seq, int64_t n, size_t limit) {
  if (n <= 0) return seq.is_string() ? Value(std::string()) : Value(List{});
  const size_t unit = seq.is_string() ? seq.str().size() : weight(seq);
  if (unit != 0 && static_cast<uint64_t>(n) > limit / unit)
    throw Problem(fmt::format("repetition longer than the limit of {} bytes", limit));
  if (seq.is_string()) {
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.str();
    return out;
  }
  if (seq.list().empty()) return List{};
  if (static_cast<uint64_t>(n) * seq.list().size() > limit) throw Problem("list longer than the limit");
  List out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list().begin(), seq.list().end());
  return out;
}

// Python's slice.indices(length) and the walk it gives.
std::vector<size_t> slice_positions(size_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                    std::optional<int64_t> step) {
  const int64_t n = static_cast<int64_t>(length);
  const int64_t st = step.value_or(1);
  if (st == 0) throw Problem("slice step cannot be zero");
  const auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  const int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  const int64_t e = clamp(stop, st > 0 ? n : -1);
  std::vector<size_t> out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(static_cast<size_t>(i));
  return out;
}

}  // namespace

Value binary_op(std::string_view op, const Value& a, const Value& b, size_t limit) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "<") return compare(a, b) < 0;
  if (op == "<=") return compare(a, b) <= 0;
  if (op == ">") return compare(a, b) > 0;
  if (op == ">=") return compare(a, b) >= 0;
  if (op == "in") return contains(b, a);
  if (op == "~") {
    std::string s = to_str(a, limit);
    s += to_str(b, limit);
    if (s.size() > limit) throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
    return s;
  }
  check_undefined(a);
  check_undefined(b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.str().size() + b.str().size() > limit)
        throw Problem(fmt::format("text longer than the limit of {} bytes", limit));
      return a.str() + b.str();
    }
    if (a.is_list() && b.is_list()) {
      if (weight(a) + weight(b) > limit) throw Problem("list longer than the limit");
      List out = a.list();
      out.insert(out.end(), b.list().begin(), b.list().end());
      return out;
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int(), limit);
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int(), limit);
  }
  if (op == "%" && a.is_string()) throw Problem("printf-style '%' formatting is not supported");
  return arithmetic(op, a, b);
}

Value negate(const Value& v) {
  if (v.is_float()) return -v.as_double();
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == INT64_MIN) throw Problem("integer overflow");
    return -v.as_int();
  }
  check_undefined(v);
  throw Problem(fmt::format("bad operand type for unary -: '{}'", type_name(v)));
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string())
      throw Problem(fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
    return container.str().find(item.str()) != std::string::npos;
  }
  if (container.is_list()) {
    for (const Value& e : container.list())
      if (equals(e, item)) return true;
    return false;
  }
  if (container.is_dict() && !container.dict().is_namespace) {
    return item.is_string() && container.dict().find(item.str()) != nullptr;
  }
  if (container.is_undefined()) return false;  // Python's 'in' iterates it, and it is empty
  throw Problem(fmt::format("argument of type '{}' is not iterable", type_name(container)));
}

Value get_attr(const Value& obj, std::string_view name) {
  check_undefined(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().find(name)) return *v;
  }
  return Undefined{std::string(name)};
}

Value get_item(const Value& obj, const Value& key) {
  check_undefined(obj);
  const std::string key_text = key.is_string() ? key.str() : to_str(key, 64);
  if (obj.is_dict()) {
    if (key.is_string())
      if (const Value* v = obj.dict().find(key.str())) return *v;
    return Undefined{key_text};
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Undefined{key_text};
      return obj.list()[static_cast<size_t>(i)];
    }
    const auto cps = split_code_points(obj.str());
    const int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Undefined{key_text};
    return std::string(cps[static_cast<size_t>(i)]);
  }
  return Undefined{key_text};
}

Value slice(const Value& obj, const std::optional<int64_t>& start, const std::optional<int64_t>& stop,
            const std::optional<int64_t>& step) {
  check_undefined(obj);
  if (obj.is_list()) {
    List out;
    for (size_t i : slice_positions(obj.list().size(), start, stop, step)) out.push_back(obj.list()[i]);
    return out;
  }
  if (obj.is_string()) {
    const auto cps = split_code_points(obj.str());
    std::string out;
    for (size_t i : slice_positions(cps.size(), start, stop, step)) out += cps[i];
    return out;
  }
  throw Problem(fmt::format("'{}' object is not subscriptable", type_name(obj)));
}

Value get_path(const Value& obj, std::string_view path) {
  Value v = obj;
  size_t pos = 0;
  for (;;) {
    const size_t dot = path.find('.', pos);
    const std::string_view part = path.substr(pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos);
    const bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string_view::npos;
    if (digits && part.size() < 18) {
      v = get_item(v, Value(static_cast<int64_t>(std::stoll(std::string(part)))));
    } else {
      v = get_item(v, Value(part));
    }
    if (dot == std::string_view::npos) return v;
    pos = dot + 1;
    if (v.is_undefined()) return v;
  }
}

}  // namespace upg::jinja
