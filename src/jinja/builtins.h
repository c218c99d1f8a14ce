#pragma once
// What templates call by name: filters (filters.cpp), tests (is-tests.cpp), methods of
// str/dict/list (methods.cpp) and the globals transformers installs (globals.cpp). All
// throw Problem on bad arguments.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "upg/jinja/template.h"
#include "jinja/value.h"

namespace upg::jinja {

// The entry called `name` in a table of {name, fn} entries, or null.
template <class Table>
const typename Table::value_type* find_named(const Table& table, std::string_view name) {
  for (const auto& e : table)
    if (e.name == name) return &e;
  return nullptr;
}

bool known_filter(std::string_view name);
// `limit` caps the bytes of any text a filter builds.
Value apply_filter(std::string_view name, const Value& subject, const CallArgs& args, size_t limit);

bool known_test(std::string_view name);
bool apply_test(std::string_view name, const Value& subject, const CallArgs& args);

// obj.name(args) when obj's type has that method; nullopt when it has none.
std::optional<Value> call_method(const Value& obj, std::string_view name, const CallArgs& args, size_t limit);
// Whether obj.name names a method (so attribute lookup does not read a dict key).
bool has_method(const Value& obj, std::string_view name);

// raise_exception(message) throws this; the interpreter reports it with its position.
class RaisedError : public Problem {
 public:
  using Problem::Problem;
};

// range, namespace, dict, raise_exception, strftime_now.
std::vector<std::pair<std::string, Value>> make_globals(const RenderOptions& options);

}  // namespace upg::jinja
