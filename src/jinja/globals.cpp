// The functions a template can call by name: jinja2's range, namespace and dict, and
// the two transformers adds for chat templates, raise_exception and strftime_now.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#include "jinja/builtins.h"

namespace upg::jinja {
namespace {

// jinja2's sandbox refuses ranges longer than this (MAX_RANGE).
constexpr int64_t kMaxRange = 100000;

Value range(CallArgs& a) {
  if (!a.named.empty() || a.positional.empty() || a.positional.size() > 3) throw Problem("range takes 1 to 3 integers");
  for (const Value& v : a.positional)
    if (!v.is_int() && !v.is_bool()) throw Problem(fmt::format("range takes integers, not {}", type_name(v)));
  int64_t start = 0, stop = 0, step = 1;
  if (a.positional.size() == 1) {
    stop = a.positional[0].as_int();
  } else {
    start = a.positional[0].as_int();
    stop = a.positional[1].as_int();
    if (a.positional.size() == 3) step = a.positional[2].as_int();
  }
  if (step == 0) throw Problem("range step cannot be zero");
  // Counted in doubles: the int64 difference of two extremes could overflow.
  const double n = std::max(0.0, std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step)));
  if (n > kMaxRange) throw Problem(fmt::format("range too big: {} items (at most {})", n, kMaxRange));
  List out;
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) out.emplace_back(start + i * step);
  return out;
}

// namespace(mapping?, **attributes) and dict(mapping?, **items).
Value make_mapping(CallArgs& a, bool is_namespace) {
  std::vector<std::pair<std::string, Value>> entries;
  if (a.positional.size() > 1) throw Problem("namespace/dict take at most one positional argument");
  if (!a.positional.empty()) {
    const Value& m = a.positional[0];
    if (!m.is_dict() || m.dict().is_namespace) throw Problem("namespace/dict take a mapping");
    entries = m.dict().entries;
  }
  for (auto& kv : a.named) entries.push_back(kv);
  return make_dict(std::move(entries), is_namespace);
}

}  // namespace

std::vector<std::pair<std::string, Value>> make_globals(const RenderOptions& options) {
  std::vector<std::pair<std::string, Value>> g;
  g.emplace_back("range", Value(Function(range)));
  g.emplace_back("namespace", Value(Function([](CallArgs& a) { return make_mapping(a, true); })));
  g.emplace_back("dict", Value(Function([](CallArgs& a) { return make_mapping(a, false); })));
  g.emplace_back("raise_exception", Value(Function([](CallArgs& a) -> Value {
    throw RaisedError(a.positional.empty() ? std::string() : to_str(a.positional[0], 4096));
  })));
  const std::optional<std::tm> now = options.now;
  g.emplace_back("strftime_now", Value(Function([now](CallArgs& a) -> Value {
    if (a.positional.size() != 1 || !a.positional[0].is_string()) throw Problem("strftime_now takes a format string");
    std::tm tm{};
    if (now) {
      tm = *now;
    } else {
      const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
      localtime_r(&t, &tm);
    }
    const std::string& fmt = a.positional[0].str();
    if (fmt.size() > 256) throw Problem("strftime_now format longer than 256 bytes");
    char buf[2048];
    const size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    if (n == 0 && !fmt.empty()) throw Problem("strftime_now: the formatted date is empty or too long");
    return std::string(buf, n);
  })));
  return g;
}

}  // namespace upg::jinja
