#pragma once
// The check in front of XGrammar's JSON Schema converter. XGrammar reads each schema
// node by its first keyword of $ref, const, enum, anyOf, oneOf, allOf, type (in that
// order) and ignores what stands beside it, turns allOf of several schemas into "any
// value", oneOf whose branches it cannot prove disjoint into anyOf, and skips `not`,
// `if`, `uniqueItems`, `contains`, `dependencies` and more with at most a log line: each
// of these accepts output the schema forbids. This check refuses every such schema with
// one error naming the keyword and its JSON path, so what compiles is enforced.
#include <nlohmann/json.hpp>

namespace upg::grammar {

// Throws ParamError("json_schema", "<path>: <problem>") for the first keyword that would
// not be enforced, or a schema that is not one (a node neither object nor boolean).
void check_json_schema(const nlohmann::json& schema);

}  // namespace upg::grammar
