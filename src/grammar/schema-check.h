#pragma once
// The check in front of XGrammar's JSON Schema converter. XGrammar reads each schema
// node by its first keyword of $ref, const, enum, anyOf, oneOf, allOf, type (in that
// order) and ignores what stands beside it, turns allOf of several schemas into "any
// value", oneOf whose branches it cannot prove disjoint into anyOf, and skips `not`,
// `if`, `uniqueItems`, `contains`, `dependencies` and more with at most a log line: each
// of these accepts output the schema forbids. This check refuses every such schema with
// one error naming the keyword and its JSON path, so what compiles is enforced.
// Hand-written: no library knows what XGrammar enforces.
#include <nlohmann/json.hpp>

namespace upg::grammar {

// The schema XGrammar is given: `schema` with the rewrites that make XGrammar enforce
// what JSON Schema says (an unanchored `pattern` matched anywhere in the string; formats
// date, time and date-time as exact RFC 3339 patterns, where XGrammar's own accept
// 2022-02-31). Throws ParamError("json_schema", "<path>: <problem>") for the first
// keyword that would not be enforced, or a node that is not a schema.
nlohmann::ordered_json prepare_json_schema(const nlohmann::ordered_json& schema);

}  // namespace upg::grammar
