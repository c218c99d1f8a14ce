// Hand-written: no library rewrites JSON Schema into the forms XGrammar enforces (see
// schema-rewrite.h for what and why).
#include "grammar/schema-rewrite.h"

#include <algorithm>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/schema-values.h"

namespace upg::grammar {
namespace {

using json = nlohmann::ordered_json;
using Opt = std::optional<json>;

// Keywords that constrain an instance (the rest are annotations, or not JSON Schema's,
// which validators ignore).
const std::set<std::string, std::less<>> kAssertions = {
    "type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf", "not", "if", "then", "else",
    "properties", "required", "additionalProperties", "patternProperties", "propertyNames", "minProperties",
    "maxProperties", "dependencies", "dependentRequired", "dependentSchemas", "unevaluatedProperties",
    "items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains",
    "minContains", "maxContains", "unevaluatedItems", "minLength", "maxLength", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "$dynamicRef", "$recursiveRef"};
constexpr std::string_view kLower[] = {"minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"};
constexpr std::string_view kUpper[] = {"maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"};
constexpr std::string_view kAllTypes[] = {"null", "boolean", "number", "string", "array", "object"};
// Keywords for one instance type, and what XGrammar infers the type from without `type`.
constexpr std::string_view kTypedKw[] = {
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minItems", "maxItems", "required", "patternProperties", "propertyNames", "minProperties",
    "maxProperties"};
constexpr std::string_view kInferred[] = {"properties", "additionalProperties", "unevaluatedProperties", "items",
                                          "prefixItems", "unevaluatedItems"};
// Beyond this many anyOf branches from distributing, a merge gives up.
constexpr size_t kMaxBranches = 64;
// Beyond this many dependentRequired triggers that need a branch each (2^n), not rewritten.
constexpr size_t kMaxDependencyTriggers = 4;

bool has(const json& v, std::string_view k) { return v.is_object() && v.contains(k); }
bool trivial(const json& v) { return v == true || (v.is_object() && v.empty()); }
bool is_assertion(const std::string& k) { return kAssertions.count(k) > 0; }

// The node with only its assertions (annotations and $defs dropped).
json assertions_of(const json& v) {
  json out = json::object();
  for (const auto& [k, x] : v.items())
    if (is_assertion(k)) out[k] = x;
  return out;
}

std::string escape(std::string_view key) {
  std::string out;
  for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return out;
}

std::optional<std::vector<std::string>> type_list(const json& t) {
  std::vector<std::string> out;
  if (t.is_string()) out.push_back(t.get<std::string>());
  else if (t.is_array())
    for (const auto& e : t) {
      if (!e.is_string()) return std::nullopt;
      out.push_back(e.get<std::string>());
    }
  else return std::nullopt;
  return out;
}

class Rewriter {
 public:
  // draft: the written schema's $schema (a rewritten root may have lost it).
  Rewriter(const json& root, const std::string& draft) : root_(root) {
    for (const char* d : {"draft-03", "draft-04", "draft-06", "draft-07"})
      if (draft.find(d) != std::string::npos) old_draft_ = true;
    draft_2020_ = draft.find("2020-12") != std::string::npos;
    collect_refs(root);
  }

  json walk(const json& v, const std::string& ptr, int depth) {
    visited_.insert(ptr);
    if (!v.is_object() || depth > 128) return v;
    json out = v;
    for (const char* map : {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"})
      if (has(out, map) && out[map].is_object())
        for (auto& [k, sub] : out[map].items()) sub = walk(sub, ptr + "/" + map + "/" + escape(k), depth + 1);
    for (const char* one : {"additionalProperties", "unevaluatedProperties", "items", "additionalItems",
                            "unevaluatedItems", "propertyNames", "not", "if", "then", "else", "contains"})
      if (has(out, one) && out[one].is_object()) out[one] = walk(out[one], ptr + "/" + one, depth + 1);
    for (const char* list : {"anyOf", "oneOf", "allOf", "prefixItems", "items"})
      if (has(out, list) && out[list].is_array())
        for (size_t i = 0; i < out[list].size(); ++i)
          out[list][i] = walk(out[list][i], ptr + "/" + list + "/" + std::to_string(i), depth + 1);
    return local(std::move(out), ptr);
  }

  // Referenced nodes no schema keyword leads to ("definitions": {"group": {"name": ...}}),
  // rewritten where they are.
  void walk_unvisited_targets(json& doc) {
    for (const std::string& t : std::vector<std::string>(ref_targets_)) {
      if (visited_.count(t)) continue;
      try {
        const json::json_pointer p(t);
        if (doc.contains(p)) doc[p] = walk(doc[p], t, 0);
      } catch (const json::exception&) {
        // Not a JSON pointer: the check refuses the reference.
      }
    }
  }

 private:
  void collect_refs(const json& v) {
    if (v.is_object()) {
      if (has(v, "$ref") && v["$ref"].is_string() && v["$ref"].get<std::string>().starts_with("#"))
        ref_targets_.push_back(v["$ref"].get<std::string>().substr(1));
      for (const auto& [k, x] : v.items()) collect_refs(x);
    } else if (v.is_array()) {
      for (const auto& x : v) collect_refs(x);
    }
  }

  // No reference points inside the node (other than into its $defs): its children may move.
  bool restructurable(const std::string& ptr) const {
    for (const std::string& t : ref_targets_) {
      if (!t.starts_with(ptr + "/")) continue;
      const std::string_view rest = std::string_view(t).substr(ptr.size() + 1);
      if (!rest.starts_with("$defs/") && !rest.starts_with("definitions/")) return false;
    }
    return true;
  }

  json local(json v, const std::string& ptr) {
    // Draft 4's boolean exclusive bounds: the bound is minimum/maximum.
    for (auto [ex, bound] : {std::pair{"exclusiveMinimum", "minimum"}, std::pair{"exclusiveMaximum", "maximum"}})
      if (has(v, ex) && v[ex].is_boolean()) {
        if (v[ex] == true && has(v, bound)) v[ex] = v[bound], v.erase(bound);
        else if (v[ex] == false) v.erase(ex);
      }
    if (restructurable(ptr)) v = restructure(std::move(v));
    lengths_into_pattern(v);
    // A type-specific keyword without a type: every instance of another type passes it.
    if (!has(v, "type") && !has(v, "$ref") && !has(v, "enum") && !has(v, "const") && !has(v, "anyOf") &&
        !has(v, "oneOf") && !has(v, "allOf")) {
      const bool inferred = std::any_of(std::begin(kInferred), std::end(kInferred), [&](auto k) { return has(v, k); });
      const bool typed = std::any_of(std::begin(kTypedKw), std::end(kTypedKw), [&](auto k) { return has(v, k); });
      if (typed && !inferred) v["type"] = json(std::vector<std::string>(std::begin(kAllTypes), std::end(kAllTypes)));
    }
    required_into_properties(v);
    return v;
  }

  // XGrammar enforces `required` for named properties only ({"required": ["x"]} took
  // `{}`): a required name that is not one becomes one, with the schema its value is held
  // to (additionalProperties, any value by default), after the named ones, where XGrammar
  // puts other properties. With patternProperties, or additionalProperties false, left for
  // the check to refuse.
  static void required_into_properties(json& v) {
    if (!has(v, "required") || !v["required"].is_array() || has(v, "patternProperties")) return;
    if (has(v, "properties") && !v["properties"].is_object()) return;
    const json ap = has(v, "additionalProperties") ? v["additionalProperties"] : json(true);
    if (ap == false) return;
    const json required = v["required"];  // a copy: adding "properties" may move v's members
    for (const auto& r : required) {
      if (!r.is_string() || (has(v, "properties") && v["properties"].contains(r.get<std::string>()))) continue;
      v["properties"][r.get<std::string>()] = ap == true ? json::object() : ap;
    }
  }

  // minLength/maxLength beside a pattern that is one repeated character class
  // ("^[a-z0-9-]+$"), which XGrammar cannot enforce together: the lengths go into the
  // repetition ("^[a-z0-9-]{3,63}$"), one character per code point as JSON Schema counts.
  static void lengths_into_pattern(json& v) {
    if (!has(v, "pattern") || !v["pattern"].is_string() || has(v, "format") ||
        !(has(v, "minLength") || has(v, "maxLength")))
      return;
    static const std::regex kOneClass(R"(\^(\[(?:[^\]\\]|\\.)*\]|\\[wdsWDS]|\.)([+*])\$)");
    std::smatch m;
    const std::string p = v["pattern"].get<std::string>();
    if (!std::regex_match(p, m, kOneClass)) return;
    for (const char* k : {"minLength", "maxLength"})
      if (has(v, k) && !(v[k].is_number_unsigned() || v[k].is_number_integer())) return;
    const int64_t lo = std::max<int64_t>(m[2] == "+" ? 1 : 0, v.value("minLength", int64_t(0)));
    const std::string hi = has(v, "maxLength") ? std::to_string(v["maxLength"].get<int64_t>()) : "";
    v["pattern"] = "^" + m[1].str() + "{" + std::to_string(lo) + "," + hi + "}$";
    v.erase("minLength");
    v.erase("maxLength");
  }

  static bool matches_every_name(const std::string& p) {
    return p.empty() || p == ".*" || p == "^.*" || p == ".*$" || p == "^.*$" || p == "^" || p == ".?";
  }

  // The rewrites that move a node's children.
  json restructure(json v) {
    // Draft 4 tuples: items [..] then additionalItems; additionalItems means nothing
    // without them.
    if (has(v, "items") && v["items"].is_array() && !has(v, "prefixItems") && !draft_2020_) {
      v["prefixItems"] = v["items"];
      v.erase("items");
      if (has(v, "additionalItems")) v["items"] = v["additionalItems"];
    }
    if (has(v, "additionalItems") && !(has(v, "items") && v["items"].is_array())) v.erase("additionalItems");
    // One pattern that every name matches (".*"): additionalProperties never applies,
    // and every property also has the pattern's schema.
    if (has(v, "patternProperties") && v["patternProperties"].is_object() && v["patternProperties"].size() == 1 &&
        matches_every_name(v["patternProperties"].begin().key())) {
      const json all = v["patternProperties"].begin().value();
      json props = has(v, "properties") && v["properties"].is_object() ? v["properties"] : json::object();
      bool ok = true;
      for (auto& [k, x] : props.items()) {
        Opt m = merge(x, all, 0);
        if (!m) ok = false;
        else x = std::move(*m);
      }
      if (ok) {
        if (has(v, "properties")) v["properties"] = std::move(props);
        v.erase("patternProperties");
        v["additionalProperties"] = all;
      }
    }
    // Under drafts 4 to 7 a $ref's siblings are not read.
    if (old_draft_ && has(v, "$ref")) {
      json out = json::object({{"$ref", v["$ref"]}});
      for (const char* d : {"$defs", "definitions"})
        if (has(v, d)) out[d] = v[d];
      return out;
    }
    if (needs_merge(v)) {
      if (Opt m = merge(assertions_of(v), json::object(), 0); m && m->is_object()) {
        json out = std::move(*m);
        for (const char* d : {"$defs", "definitions"})
          if (has(v, d)) out[d] = v[d];
        v = std::move(out);
      }
    }
    if (Opt d = expand_dependencies(v)) v = std::move(*d);
    return v;
  }

  // dependentRequired, and draft 4-7 `dependencies` whose values are all name lists: "when
  // property k is present, so are these". A trigger that is required puts its names into
  // `required` (and so on, to a fixed point); one whose names are all required already, or
  // that cannot be present (not a named property where additionalProperties is false),
  // asks nothing. What remains, where additionalProperties is false (leaving k out of
  // `properties` forbids it), is an anyOf of the schema without k and the schema with k
  // and its names required, per trigger (at most kMaxDependencyTriggers of them). nullopt:
  // nothing to do, or not exact (then the check refuses the keyword).
  static Opt expand_dependencies(const json& v) {
    if (!has(v, "dependentRequired") && !has(v, "dependencies")) return std::nullopt;
    std::vector<std::pair<std::string, std::vector<std::string>>> deps;
    for (const char* kw : {"dependentRequired", "dependencies"}) {
      if (!has(v, kw)) continue;
      if (!v[kw].is_object()) return std::nullopt;
      for (const auto& [k, names] : v[kw].items()) {
        if (!names.is_array()) return std::nullopt;  // a schema (dependentSchemas): refused
        std::vector<std::string> list;
        for (const auto& n : names) {
          if (!n.is_string()) return std::nullopt;
          list.push_back(n.get<std::string>());
        }
        deps.emplace_back(k, std::move(list));
      }
    }
    json out = v, defs = json::object();
    out.erase("dependentRequired");
    out.erase("dependencies");
    // References point into the node's $defs: they stay at the node, not in each branch.
    for (const char* d : {"$defs", "definitions"})
      if (has(out, d)) defs[d] = out[d], out.erase(d);
    Opt r = with_dependencies(std::move(out), std::move(deps));
    if (r)
      for (const auto& [d, x] : defs.items()) (*r)[d] = x;
    return r;
  }

  static Opt with_dependencies(json v, std::vector<std::pair<std::string, std::vector<std::string>>> deps) {
    if (has(v, "required") && !v["required"].is_array()) return std::nullopt;
    json req = has(v, "required") ? v["required"] : json::array();
    auto required = [&](const std::string& k) { return std::find(req.begin(), req.end(), json(k)) != req.end(); };
    const bool closed = has(v, "additionalProperties") && v["additionalProperties"] == false &&
                        !has(v, "patternProperties") && (!has(v, "properties") || v["properties"].is_object());
    auto may_be_present = [&](const std::string& k) { return !closed || (has(v, "properties") && v["properties"].contains(k)); };
    for (bool changed = true; changed;) {
      changed = false;
      for (auto it = deps.begin(); it != deps.end();) {
        const bool all = std::all_of(it->second.begin(), it->second.end(), required);
        if (required(it->first)) {
          for (const std::string& n : it->second)
            if (!required(n)) req.push_back(n), changed = true;
        }
        if (required(it->first) || all || !may_be_present(it->first)) it = deps.erase(it);
        else ++it;
      }
    }
    if (!req.empty()) v["required"] = req;
    if (deps.empty()) return v;
    if (!closed || deps.size() > kMaxDependencyTriggers) return std::nullopt;
    const std::string k = deps.front().first;
    json without = v;
    without["properties"].erase(k);
    auto rest = deps;
    rest.erase(rest.begin());
    json with = v;
    with["required"] = req;
    with["required"].push_back(k);
    const Opt a = with_dependencies(std::move(without), rest), b = with_dependencies(std::move(with), deps);
    if (!a || !b) return std::nullopt;
    json branches = json::array();
    for (const json* side : {&*a, &*b}) {
      if (has(*side, "anyOf") && side->size() == 1) {
        for (const auto& inner : (*side)["anyOf"]) branches.push_back(inner);
      } else {
        branches.push_back(*side);
      }
    }
    return json::object({{"anyOf", std::move(branches)}});
  }

  // A keyword XGrammar reads the node by, with other assertions beside it that it would
  // not read (a `type` every enum value has is read).
  bool needs_merge(const json& v) const {
    for (const char* d : {"$ref", "const", "enum", "anyOf", "oneOf", "allOf"}) {
      if (!has(v, d)) continue;
      if (std::string_view(d) == "allOf") return true;
      for (const auto& [k, x] : v.items()) {
        if (k == d || !is_assertion(k)) continue;
        if (k == "type" && (std::string_view(d) == "enum" || std::string_view(d) == "const")) {
          const json values = std::string_view(d) == "enum" ? v["enum"] : json::array({v["const"]});
          bool fit = values.is_array();
          if (fit)
            for (const auto& e : values) fit = fit && value_is_valid(e, json::object({{"type", x}}), root_) == true;
          if (fit) continue;
        }
        return true;
      }
      return false;
    }
    return false;
  }

  const json* resolve(const json& ref) const {
    if (!ref.is_string() || !ref.get<std::string>().starts_with("#")) return nullptr;
    try {
      return &root_.at(json::json_pointer(ref.get<std::string>().substr(1)));
    } catch (const json::exception&) {
      return nullptr;
    }
  }

  // The node with its own $ref inlined and allOf folded, so that neither is at its top.
  Opt expand(const json& v, int depth) {
    if (!v.is_object()) return v;
    if (has(v, "$ref")) {
      const json* target = resolve(v["$ref"]);
      if (!target) return std::nullopt;
      json siblings = assertions_of(v);
      siblings.erase("$ref");
      const json t = target->is_object() ? assertions_of(*target) : *target;
      return merge(t, old_draft_ ? json::object() : siblings, depth + 1);
    }
    if (has(v, "allOf")) {
      if (!v["allOf"].is_array()) return std::nullopt;
      json acc = v;
      acc.erase("allOf");
      for (const auto& part : v["allOf"]) {
        Opt m = merge(acc, part, depth + 1);
        if (!m) return std::nullopt;
        acc = std::move(*m);
      }
      return acc;
    }
    return v;
  }

  // The schema both `a` and `b` describe, or nullopt where it cannot be written exactly.
  Opt merge(const json& a0, const json& b0, int depth) {
    // Self-references can branch at every level ({"allOf": [{"$ref": "#"}, {"$ref": "#"}]}):
    // a budget for the whole rewrite keeps that bounded; past it nothing more merges.
    if (depth > 16 || --merge_budget_ < 0) return std::nullopt;
    if (a0 == b0 && !has(a0, "$ref") && !has(a0, "allOf")) return a0;
    const Opt ea = expand(a0, depth), eb = expand(b0, depth);
    if (!ea || !eb) return std::nullopt;
    const json &a = *ea, &b = *eb;
    // false describes nothing, which XGrammar cannot compile: left to the check.
    if (a.is_boolean()) return a == true ? Opt(b) : std::nullopt;
    if (b.is_boolean()) return b == true ? Opt(a) : std::nullopt;
    if (!a.is_object() || !b.is_object()) return std::nullopt;
    for (const char* k : {"anyOf", "oneOf"}) {
      if (has(a, k)) return distribute(a, b, k, depth);
      if (has(b, k)) return distribute(b, a, k, depth);
    }
    if (has(a, "enum") || has(a, "const") || has(b, "enum") || has(b, "const")) return filter_values(a, b);
    return merge_plain(a, b, depth);
  }

  // (A1 | A2 | ...) & S, with S = the rest of a and b: (A1 & S) | (A2 & S) | ...; the same
  // for oneOf, since S holds for any instance either side accepts.
  Opt distribute(const json& a, const json& b, const char* k, int depth) {
    if (!a[k].is_array() || a[k].empty()) return std::nullopt;
    json rest = a;
    rest.erase(k);
    const Opt s = merge(rest, b, depth + 1);
    if (!s) return std::nullopt;
    json branches = json::array();
    for (const auto& branch : a[k]) {
      Opt m = merge(branch, *s, depth + 1);
      if (!m) return std::nullopt;
      if (has(*m, k) && std::string_view(k) == "anyOf" && (*m)[k].is_array() && m->size() == 1)
        for (const auto& inner : (*m)[k]) branches.push_back(inner);
      else branches.push_back(std::move(*m));
    }
    if (branches.size() > kMaxBranches) return std::nullopt;
    return json::object({{k, std::move(branches)}});
  }

  // An enum or const beside other keywords: the values every keyword accepts.
  Opt filter_values(const json& a, const json& b) {
    const json& e = has(a, "enum") || has(a, "const") ? a : b;
    json values = has(e, "const") ? json::array({e["const"]}) : e["enum"];
    if (!values.is_array()) return std::nullopt;
    json kept = json::array();
    for (const auto& x : values) {
      const auto ok_a = value_is_valid(x, a, root_), ok_b = value_is_valid(x, b, root_);
      if (!ok_a || !ok_b) return std::nullopt;
      if (*ok_a && *ok_b) kept.push_back(x);
    }
    if (kept.empty()) return std::nullopt;
    return json::object({{"enum", std::move(kept)}});
  }

  Opt merge_plain(const json& a, const json& b, int depth) {
    for (const char* k : {"unevaluatedProperties", "unevaluatedItems"})
      if ((has(a, k) || has(b, k)) && !(has(a, k) && has(b, k) && a[k] == b[k])) return std::nullopt;
    json out = json::object();
    if (has(a, "type") && has(b, "type")) {
      const auto ta = type_list(a["type"]), tb = type_list(b["type"]);
      if (!ta || !tb) return std::nullopt;
      std::vector<std::string> both;
      auto in_b = [&](const std::string& t) { return std::find(tb->begin(), tb->end(), t) != tb->end(); };
      for (const std::string& t : *ta) {
        if (in_b(t)) both.push_back(t);
        else if ((t == "integer" && in_b("number")) || (t == "number" && in_b("integer"))) both.push_back("integer");
      }
      if (both.empty()) return std::nullopt;
      out["type"] = both.size() == 1 ? json(both[0]) : json(both);
    }
    if (!merge_object(a, b, out, depth)) return std::nullopt;
    if (!merge_array(a, b, out, depth)) return std::nullopt;
    for (std::string_view k : kLower)
      if (has(a, k) && has(b, k)) {
        if (!a[k].is_number() || !b[k].is_number()) return std::nullopt;
        out[std::string(k)] = a[k].get<double>() >= b[k].get<double>() ? a[k] : b[k];
      }
    for (std::string_view k : kUpper)
      if (has(a, k) && has(b, k)) {
        if (!a[k].is_number() || !b[k].is_number()) return std::nullopt;
        out[std::string(k)] = a[k].get<double>() <= b[k].get<double>() ? a[k] : b[k];
      }
    if (has(a, "uniqueItems") && has(b, "uniqueItems")) out["uniqueItems"] = a["uniqueItems"] == true || b["uniqueItems"] == true;
    // The rest: taken from the side that has it; in both, they must be the same.
    for (const json* side : {&a, &b})
      for (const auto& [k, x] : side->items()) {
        if (out.contains(k)) continue;
        const json* other = side == &a ? &b : &a;
        if (!other->contains(k) || (*other)[k] == x || !is_assertion(k)) out[k] = x;
        else return std::nullopt;
      }
    return out;
  }

  // properties, required, additionalProperties, patternProperties of both.
  bool merge_object(const json& a, const json& b, json& out, int depth) {
    const json none = json::object();
    const json& pa = has(a, "properties") ? a["properties"] : none;
    const json& pb = has(b, "properties") ? b["properties"] : none;
    if (!pa.is_object() || !pb.is_object()) return false;
    const bool ap_a = has(a, "additionalProperties") && !trivial(a["additionalProperties"]);
    const bool ap_b = has(b, "additionalProperties") && !trivial(b["additionalProperties"]);
    // Which members another side's additionalProperties covers depends on its patterns
    // (regular expressions): not merged.
    if ((ap_a && has(b, "patternProperties")) || (ap_b && has(a, "patternProperties"))) return false;
    if ((ap_a && has(a, "patternProperties")) && !pb.empty()) return false;
    if ((ap_b && has(b, "patternProperties")) && !pa.empty()) return false;
    if (has(a, "properties") || has(b, "properties")) {
      json props = json::object();
      auto one_side = [&](const json& p, const json& other, bool other_ap) -> Opt {
        if (!other_ap) return p;
        return merge(p, other["additionalProperties"], depth + 1);
      };
      for (const auto& [k, x] : pa.items()) {
        Opt m = pb.contains(k) ? merge(x, pb[k], depth + 1) : one_side(x, b, ap_b);
        if (!m) return false;
        props[k] = std::move(*m);
      }
      for (const auto& [k, x] : pb.items()) {
        if (pa.contains(k)) continue;
        Opt m = one_side(x, a, ap_a);
        if (!m) return false;
        props[k] = std::move(*m);
      }
      out["properties"] = std::move(props);
    }
    if (has(a, "required") || has(b, "required")) {
      json req = json::array();
      for (const json* side : {&a, &b})
        if (has(*side, "required")) {
          if (!(*side)["required"].is_array()) return false;
          for (const auto& r : (*side)["required"])
            if (std::find(req.begin(), req.end(), r) == req.end()) req.push_back(r);
        }
      out["required"] = std::move(req);
    }
    if (has(a, "additionalProperties") && has(b, "additionalProperties")) {
      Opt m = merge(a["additionalProperties"], b["additionalProperties"], depth + 1);
      if (!m) return false;
      out["additionalProperties"] = std::move(*m);
    }
    if (has(a, "patternProperties") && has(b, "patternProperties")) {
      if (!a["patternProperties"].is_object() || !b["patternProperties"].is_object()) return false;
      json pp = a["patternProperties"];
      for (const auto& [k, x] : b["patternProperties"].items()) {
        Opt m = pp.contains(k) ? merge(pp[k], x, depth + 1) : Opt(x);
        if (!m) return false;
        pp[k] = std::move(*m);
      }
      out["patternProperties"] = std::move(pp);
    }
    return true;
  }

  // items (one schema each) and prefixItems (on one side at most).
  bool merge_array(const json& a, const json& b, json& out, int depth) {
    if (has(a, "prefixItems") && has(b, "prefixItems")) return false;
    if ((has(a, "items") && !a["items"].is_object() && !a["items"].is_boolean()) ||
        (has(b, "items") && !b["items"].is_object() && !b["items"].is_boolean()))
      return false;
    for (const json* side : {&a, &b}) {
      if (!has(*side, "prefixItems")) continue;
      const json& other = side == &a ? b : a;
      if (!(*side)["prefixItems"].is_array()) return false;
      json prefix = json::array();
      for (const auto& p : (*side)["prefixItems"]) {
        Opt m = has(other, "items") ? merge(p, other["items"], depth + 1) : Opt(p);
        if (!m) return false;
        prefix.push_back(std::move(*m));
      }
      out["prefixItems"] = std::move(prefix);
    }
    if (has(a, "items") && has(b, "items")) {
      Opt m = merge(a["items"], b["items"], depth + 1);
      if (!m) return false;
      out["items"] = std::move(*m);
    }
    return true;
  }

  const json& root_;
  bool old_draft_ = false, draft_2020_ = false;
  std::vector<std::string> ref_targets_;
  std::set<std::string> visited_;
  int merge_budget_ = 20000;
};

}  // namespace

json rewrite_json_schema(const json& schema) {
  // Twice: what a merge produced (an inlined reference, a distributed branch) gets the
  // same treatment as what was written.
  const json& declared = schema.is_object() && schema.contains("$schema") ? schema["$schema"] : json();
  const std::string draft = declared.is_string() ? declared.get<std::string>() : "";
  json out = schema;
  for (int pass = 0; pass < 2; ++pass) {
    Rewriter r(out, draft);
    json next = r.walk(out, "", 0);
    r.walk_unvisited_targets(next);
    if (next == out) break;
    out = std::move(next);
  }
  return out;
}

}  // namespace upg::grammar
