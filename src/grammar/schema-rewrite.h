#pragma once
// JSON Schemas rewritten, before the check (schema-check.h), into forms XGrammar's
// converter enforces exactly, each with the same set of valid instances:
// - keywords beside `$ref`, `anyOf`, `oneOf` or `allOf` merged into one schema: the
//   reference inlined, the siblings distributed over each branch ((A | B) & S = A&S |
//   B&S), `allOf` folded into one schema (properties and required united, bounds
//   tightened, the types intersected); under drafts 4 to 7 a `$ref`'s siblings are
//   ignored, as those drafts say;
// - `enum`/`const` beside other keywords: the values those keywords reject dropped;
// - draft 4: `items` as an array with `additionalItems` becomes `prefixItems` and
//   `items`, boolean `exclusiveMinimum`/`exclusiveMaximum` the numeric forms;
// - a type-specific keyword without a `type` (`{"minLength": 2}`, which every non-string
//   passes) becomes an anyOf of the typed schema and the other types.
// A merge that cannot be exact (two different patterns, a keyword it does not know in
// both) leaves the node as written, for the check to refuse. A node is not restructured
// where a `$ref` points inside it (other than into its `$defs`/`definitions`), since the
// reference would then mean something else.
// Hand-written: no library rewrites JSON Schema for XGrammar.
#include <nlohmann/json.hpp>

namespace upg::grammar {

nlohmann::ordered_json rewrite_json_schema(const nlohmann::ordered_json& schema);

}  // namespace upg::grammar
