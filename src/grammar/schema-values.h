#pragma once
// Whether one JSON value is valid under a JSON Schema, for the rewrites that filter an
// `enum` or `const` by the keywords beside it (schema-rewrite.cpp). It answers "unknown"
// for keywords it does not evaluate, and the rewrite then leaves the schema alone.
// Hand-written: no C++ JSON Schema validator is packaged for Debian, and only the
// keywords enum values meet in practice are needed.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace upg::grammar {

// true or false where every keyword on the way was evaluated, nullopt otherwise. `root`
// resolves "#..." references.
std::optional<bool> value_is_valid(const nlohmann::ordered_json& value, const nlohmann::ordered_json& schema,
                                   const nlohmann::ordered_json& root);

// Whether std::regex may be trusted with a pattern: short, without large counted
// repetitions (its automaton grows with them; a fuzzed "(a{9999}){9999}" would not end).
bool regex_is_small(const std::string& pattern);

}  // namespace upg::grammar
