// Hand-written: no library says which JSON Schema keywords XGrammar's converter
// enforces; the rules below come from its source (json_schema_converter.cc, 0.2.9) and
// from the MaskBench sample (tests/fixtures/maskbench/: every invalid instance it accepted
// was traced to one of them; docs/GRAMMAR.md lists them).
#include "grammar/schema-check.h"

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "grammar/schema-rewrite.h"
#include "grammar/schema-values.h"
#include "upg/core/error.h"

namespace upg::grammar {
namespace {

using json = nlohmann::ordered_json;
using Ptr = json::json_pointer;

// Keywords XGrammar skips, that constrain an instance: refused wherever they appear.
constexpr std::string_view kIgnored[] = {
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies",
    "contains", "minContains", "maxContains", "additionalItems", "$dynamicRef", "$recursiveRef",
};
// The keywords XGrammar reads a node by, in its order; what stands beside the first one
// present is not read.
constexpr std::string_view kDispatch[] = {"$ref", "const", "enum", "anyOf", "oneOf", "allOf"};
// Keywords that apply to one instance type, and are enforced under that type.
const std::set<std::string, std::less<>> kStringKw = {"minLength", "maxLength", "pattern", "format"};
const std::set<std::string, std::less<>> kNumberKw = {"minimum", "maximum", "exclusiveMinimum",
                                                     "exclusiveMaximum", "multipleOf"};
const std::set<std::string, std::less<>> kArrayKw = {"items", "prefixItems", "minItems", "maxItems",
                                                    "unevaluatedItems"};
const std::set<std::string, std::less<>> kObjectKw = {"properties", "required", "additionalProperties",
                                                     "patternProperties", "propertyNames", "minProperties",
                                                     "maxProperties", "unevaluatedProperties"};
// Formats XGrammar turns into a regular expression (JSONFormatToRegexPattern).
const std::set<std::string, std::less<>> kBuiltinFormats = {
    "date", "date-time", "duration", "email", "hostname", "json-pointer", "relative-json-pointer",
    "time", "uri", "uri-reference", "uri-template", "uuid"};
// RFC 3339 dates and times as exact patterns (days per month, leap years): XGrammar's
// own patterns take any day 01-31 in any month.
constexpr const char* kDate =
    "([0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|"
    "02-(0[1-9]|1[0-9]|2[0-8]))|([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29)";
constexpr const char* kTime =
    "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
// Formats JSON Schema defines that XGrammar does not enforce. Other format names are not
// JSON Schema's ("int32", "phone"): annotations, which validators ignore too.
const std::set<std::string, std::less<>> kUnenforcedFormats = {
    "ipv4", "ipv6", "idn-email", "idn-hostname", "iri", "iri-reference", "regex"};

std::string child_path(const std::string& path, std::string_view key) {
  bool plain = !key.empty() && !(key[0] >= '0' && key[0] <= '9');
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$')) plain = false;
  return plain ? fmt::format("{}.{}", path, key) : fmt::format("{}[{}]", path, json(std::string(key)).dump());
}
std::string index_path(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }

[[noreturn]] void refuse(const std::string& path, const std::string& problem) {
  throw ParamError("json_schema", fmt::format("{}: {}", path, problem));
}

bool has(const json& node, std::string_view key) { return node.contains(key); }

// The JSON types a value has, as JSON Schema names them ("integer" also counts as "number").
std::set<std::string> value_types(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return {"null"};
    case json::value_t::boolean: return {"boolean"};
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return {"integer", "number"};
    case json::value_t::number_float: return {"number"};
    case json::value_t::string: return {"string"};
    case json::value_t::array: return {"array"};
    default: return {"object"};
  }
}

class Checker {
 public:
  explicit Checker(const json& root) : root_(root) {}

  // Rewrites to apply to a copy of the schema: the value to set at a pointer, or erase.
  std::vector<std::pair<Ptr, std::optional<json>>> rewrites;

  void node(const json& v, const std::string& path, const Ptr& ptr, int depth) {
    if (depth > 128) refuse(path, "schema nested too deeply");
    if (!visited_.insert(ptr.to_string()).second) return;
    if (v.is_boolean()) return;
    if (!v.is_object()) refuse(path, "a schema must be an object or a boolean");
    for (std::string_view k : kIgnored)
      if (has(v, k)) refuse(child_path(path, k), fmt::format("keyword '{}' is not supported", k));
    if (has(v, "uniqueItems") && v["uniqueItems"] != false)
      refuse(child_path(path, "uniqueItems"), "keyword 'uniqueItems' is not supported");

    const char* dispatch = nullptr;
    for (std::string_view k : kDispatch)
      if (has(v, k)) {
        dispatch = k.data();
        break;
      }
    if (dispatch) check_dispatch(v, path, dispatch, depth);
    else check_typed(v, path, ptr);
    recurse(v, path, ptr, depth);
  }

 private:
  void check_dispatch(const json& v, const std::string& path, std::string_view d, int depth) {
    // What XGrammar would not read beside the keyword it dispatches on.
    for (const auto& [k, _] : v.items()) {
      if (k == d || k == "$defs" || k == "definitions") continue;
      const bool assertion = kStringKw.count(k) || kNumberKw.count(k) || kArrayKw.count(k) ||
                             kObjectKw.count(k) || k == "type" ||
                             std::find(std::begin(kDispatch), std::end(kDispatch), k) != std::end(kDispatch);
      if (!assertion) continue;
      if (k == "type" && (d == "const" || d == "enum") && values_fit_type(v, d)) continue;
      refuse(child_path(path, k), fmt::format("keyword '{}' beside '{}' is not supported", k, d));
    }
    if (d == "$ref") {
      const json& r = v["$ref"];
      if (!r.is_string() || !r.get<std::string>().starts_with("#"))
        refuse(child_path(path, "$ref"), "only references inside the schema ('#...') are supported");
      // The target is checked where it is, also when no schema keyword leads there
      // ("definitions": {"group": {"name": {...}}}).
      const std::string target = r.get<std::string>();
      const json& t = resolve(target, child_path(path, "$ref"));
      node(t, target, Ptr(target.substr(1)), depth + 1);
    } else if (d == "allOf") {
      const json& a = v["allOf"];
      if (a.is_array() && a.size() > 1)
        refuse(child_path(path, "allOf"), "allOf of more than one schema is not supported");
    } else if (d == "oneOf") {
      const json& a = v["oneOf"];
      if (a.is_array())
        for (size_t i = 0; i < a.size(); ++i)
          for (size_t j = i + 1; j < a.size(); ++j)
            if (!disjoint(a[i], a[j]))
              refuse(child_path(path, "oneOf"),
                     fmt::format("oneOf whose branches {} and {} may both match is not supported (use anyOf)", i, j));
    }
  }

  bool values_fit_type(const json& v, std::string_view d) const {
    std::set<std::string> allowed;
    const json& t = v["type"];
    if (t.is_string()) allowed.insert(t.get<std::string>());
    else if (t.is_array())
      for (const auto& e : t)
        if (e.is_string()) allowed.insert(e.get<std::string>());
    auto fits = [&](const json& value) {
      for (const auto& ty : value_types(value))
        if (allowed.count(ty)) return true;
      return false;
    };
    if (d == "const") return fits(v["const"]);
    if (!v["enum"].is_array()) return false;
    for (const auto& e : v["enum"])
      if (!fits(e)) return false;
    return true;
  }

  void check_typed(const json& v, const std::string& path, const Ptr& ptr) {
    // The types XGrammar reads the node as: `type`, else object or array from their
    // keywords, else any value (where no type-specific keyword is read).
    std::set<std::string> types;
    if (has(v, "type")) {
      const json& t = v["type"];
      if (t.is_string()) types.insert(t.get<std::string>());
      else if (t.is_array() && !t.empty())
        for (const auto& e : t) types.insert(e.is_string() ? e.get<std::string>() : "?");
    } else if (has(v, "properties") || has(v, "additionalProperties") || has(v, "unevaluatedProperties")) {
      types.insert("object");
    } else if (has(v, "items") || has(v, "prefixItems") || has(v, "unevaluatedItems")) {
      types.insert("array");
    }
    if (types.count("integer")) types.insert("number");
    for (const auto& [k, _] : v.items()) {
      const char* needs = kStringKw.count(k)   ? "string"
                          : kNumberKw.count(k) ? "number"
                          : kArrayKw.count(k)  ? "array"
                          : kObjectKw.count(k) ? "object"
                                               : nullptr;
      if (needs && types.empty())
        refuse(child_path(path, k), fmt::format("keyword '{}' without a 'type' is not supported", k));
    }
    if (types.count("string")) {
      const bool lengths = has(v, "minLength") || has(v, "maxLength");
      if (has(v, "format") && v["format"].is_string()) {
        const std::string f = v["format"].get<std::string>();
        if (kUnenforcedFormats.count(f))
          refuse(child_path(path, "format"), fmt::format("format '{}' is not supported", f));
        if (lengths && kBuiltinFormats.count(f))
          refuse(path, "minLength/maxLength beside 'format' is not supported");
      }
      if (lengths && has(v, "pattern")) refuse(path, "minLength/maxLength beside 'pattern' is not supported");
      rewrite_string(v, path, ptr);
    }
    if (types.count("object") && has(v, "patternProperties")) check_pattern_properties(v, path);
    // XGrammar enforces `required` for named properties only (the rewrite names the others
    // where it can).
    if (types.count("object") && has(v, "required") && v["required"].is_array())
      for (const auto& r : v["required"])
        if (!r.is_string() || !has(v, "properties") || !v["properties"].is_object() ||
            !v["properties"].contains(r.get<std::string>()))
          refuse(child_path(path, "required"),
                 fmt::format("required property {} that is not in 'properties' is not supported", r.dump()));
    // XGrammar's numbers take multipleOf only in whole steps.
    if (has(v, "multipleOf") && types.count("number") && !types.count("integer"))
      refuse(child_path(path, "multipleOf"), "multipleOf on a non-integer number is not supported");
    for (const char* k : {"exclusiveMinimum", "exclusiveMaximum"})
      if (has(v, k) && v[k].is_boolean())
        refuse(child_path(path, k), fmt::format("'{}' as a boolean (draft 4) is not supported", k));
    if (has(v, "items") && v["items"].is_array())
      refuse(child_path(path, "items"), "'items' as an array (draft 4 tuples) is not supported; use prefixItems");
  }

  // XGrammar offers a member that matches a pattern the additionalProperties schema as
  // well, and checks a named property against its own schema only: enforced exactly
  // when additionalProperties is false and no named property matches a pattern.
  void check_pattern_properties(const json& v, const std::string& path) {
    const std::string at = child_path(path, "patternProperties");
    if (v.value("additionalProperties", json(true)) != false)
      refuse(at, "patternProperties without \"additionalProperties\": false is not supported");
    if (!v["patternProperties"].is_object() || !has(v, "properties") || !v["properties"].is_object()) return;
    for (const auto& [p, _] : v["patternProperties"].items()) {
      std::optional<std::regex> re;
      try {
        if (!grammar::regex_is_small(p)) throw std::regex_error(std::regex_constants::error_complexity);
        re.emplace(p, std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        refuse(at, fmt::format("pattern '{}' beside named properties is not supported", p));
      }
      for (const auto& [name, __] : v["properties"].items())
        if (std::regex_search(name, *re))
          refuse(at, fmt::format("property '{}' also matching pattern '{}' is not supported", name, p));
    }
  }

  void recurse(const json& v, const std::string& path, const Ptr& ptr, int depth) {
    for (const char* map : {"properties", "patternProperties", "$defs", "definitions"})
      if (has(v, map) && v[map].is_object())
        for (const auto& [k, sub] : v[map].items())
          node(sub, child_path(child_path(path, map), k), ptr / map / k, depth + 1);
    for (const char* one : {"additionalProperties", "unevaluatedProperties", "items", "unevaluatedItems",
                            "propertyNames"})
      if (has(v, one) && !v[one].is_array()) node(v[one], child_path(path, one), ptr / one, depth + 1);
    for (const char* list : {"anyOf", "oneOf", "allOf", "prefixItems"})
      if (has(v, list) && v[list].is_array())
        for (size_t i = 0; i < v[list].size(); ++i)
          node(v[list][i], index_path(child_path(path, list), i), ptr / list / i, depth + 1);
  }

  // JSON Schema's `pattern` matches anywhere in the string, XGrammar's the whole string;
  // and its date and time formats are looser than RFC 3339.
  void rewrite_string(const json& v, const std::string& path, const Ptr& ptr) {
    if (has(v, "format") && v["format"].is_string() && !has(v, "pattern")) {
      const std::string f = v["format"].get<std::string>();
      std::optional<std::string> exact;
      if (f == "date") exact = std::string("^") + kDate + "$";
      else if (f == "time") exact = std::string("^") + kTime + "$";
      else if (f == "date-time") exact = std::string("^") + kDate + "[Tt]" + kTime + "$";
      if (exact) {
        rewrites.emplace_back(ptr / "format", std::nullopt);
        rewrites.emplace_back(ptr / "pattern", json(*exact));
      }
      return;
    }
    if (!has(v, "pattern") || !v["pattern"].is_string()) return;
    if (has(v, "format")) refuse(child_path(path, "format"), "'format' beside 'pattern' is not supported");
    const std::string p = v["pattern"].get<std::string>();
    const bool head = p.starts_with("^");
    const bool tail = p.ends_with("$") && !p.ends_with("\\$");
    if (head && tail) return;
    // An alternation at the top level would bind the anchors to one branch only.
    int depth = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] == '\\') ++i;
      else if (p[i] == '(' || p[i] == '[') ++depth;
      else if (p[i] == ')' || p[i] == ']') --depth;
      else if (p[i] == '|' && depth == 0)
        refuse(child_path(path, "pattern"), "an unanchored pattern with a top-level '|' is not supported");
    }
    const std::string body = p.substr(head ? 1 : 0, p.size() - (head ? 1 : 0) - (tail ? 1 : 0));
    rewrites.emplace_back(ptr / "pattern", json(fmt::format("^{}({}){}$", head ? "" : ".*", body, tail ? "" : ".*")));
  }

  const json& resolve(const std::string& ref, const std::string& path) const {
    try {
      return root_.at(json::json_pointer(ref.substr(1)));
    } catch (const json::exception&) {
      refuse(path, fmt::format("$ref '{}' does not resolve inside the schema", ref));
    }
  }

  // A branch after following $ref (a few hops; a cycle gives up).
  const json& follow(const json& s) const {
    const json* cur = &s;
    for (int hop = 0; hop < 8 && cur->is_object() && cur->contains("$ref") && (*cur)["$ref"].is_string(); ++hop) {
      const std::string r = (*cur)["$ref"].get<std::string>();
      if (!r.starts_with("#")) break;
      try {
        cur = &root_.at(json::json_pointer(r.substr(1)));
      } catch (const json::exception&) {
        break;
      }
    }
    return *cur;
  }

  // The instance types a branch can match, or empty when it cannot be told simply.
  std::set<std::string> branch_types(const json& b) const {
    std::set<std::string> out;
    if (!b.is_object()) return out;
    if (b.contains("const")) return value_types(b["const"]);
    if (b.contains("enum") && b["enum"].is_array()) {
      for (const auto& e : b["enum"])
        for (const auto& t : value_types(e)) out.insert(t);
      return out;
    }
    if (b.contains("type")) {
      const json& t = b["type"];
      if (t.is_string()) out.insert(t.get<std::string>());
      else if (t.is_array())
        for (const auto& e : t)
          if (e.is_string()) out.insert(e.get<std::string>());
      if (out.count("integer")) out.insert("number");
      if (out.count("number")) out.insert("integer");
    }
    return out;
  }

  // The values a schema allows, where they are few: const, enum, or a string pattern that
  // is one literal ("^success$"); empty otherwise.
  static std::vector<json> few_values(const json& p) {
    std::vector<json> out;
    if (!p.is_object()) return out;
    if (p.contains("const")) out.push_back(p["const"]);
    else if (p.contains("enum") && p["enum"].is_array())
      for (const auto& e : p["enum"]) out.push_back(e);
    else if (p.value("type", json()) == "string" && p.contains("pattern") && p["pattern"].is_string()) {
      const std::string pat = p["pattern"].get<std::string>();
      const bool literal = pat.size() > 2 && pat.front() == '^' && pat.back() == '$' &&
                           std::all_of(pat.begin() + 1, pat.end() - 1, [](char c) {
                             return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ' ';
                           });
      if (literal) out.push_back(json(pat.substr(1, pat.size() - 2)));
    }
    return out;
  }

  // Two oneOf branches no instance matches both of: different types, value sets that do
  // not meet, or objects with a property both require whose schemas are disjoint (a
  // discriminator, also nested) or that one requires and the other forbids.
  bool disjoint(const json& a0, const json& b0, int depth = 0) const {
    if (depth > 8) return false;
    const json& a = follow(a0);
    const json& b = follow(b0);
    const auto ta = branch_types(a), tb = branch_types(b);
    if (!ta.empty() && !tb.empty()) {
      bool overlap = false;
      for (const auto& t : ta) overlap |= tb.count(t) > 0;
      if (!overlap) return true;
    }
    const auto va = few_values(a), vb = few_values(b);
    if (!va.empty() && !vb.empty()) {
      bool shared = false;
      for (const auto& x : va)
        for (const auto& y : vb) shared |= x == y;
      if (!shared) return true;
    }
    if (!a.is_object() || !b.is_object() || !a.contains("properties") || !b.contains("properties")) return false;
    if (!a["properties"].is_object() || !b["properties"].is_object()) return false;
    auto required = [](const json& s, const std::string& k) {
      if (!s.contains("required") || !s["required"].is_array()) return false;
      for (const auto& r : s["required"])
        if (r == k) return true;
      return false;
    };
    // additionalProperties false and no pattern that could admit the name.
    auto forbids = [](const json& s, const std::string& k) {
      return s.value("additionalProperties", json(true)) == false && !s.contains("patternProperties") &&
             !s["properties"].contains(k);
    };
    for (const auto& [x, y] : {std::pair{&a, &b}, std::pair{&b, &a}})
      if ((*x).contains("required") && (*x)["required"].is_array())
        for (const auto& r : (*x)["required"])
          if (r.is_string() && forbids(*y, r.get<std::string>())) return true;
    for (const auto& [k, pa] : a["properties"].items())
      if (b["properties"].contains(k) && required(a, k) && required(b, k) &&
          disjoint(pa, b["properties"][k], depth + 1))
        return true;
    return false;
  }

  const json& root_;
  std::set<std::string> visited_;  // pointers of the nodes checked
};

}  // namespace

json prepare_json_schema(const json& written) {
  const json schema = rewrite_json_schema(written);
  Checker c(schema);
  c.node(schema, "$", Ptr(), 0);
  json out = schema;
  for (const auto& [ptr, value] : c.rewrites) {
    if (value) out[ptr] = *value;
    else out[ptr.parent_pointer()].erase(ptr.back());
  }
  return out;
}

}  // namespace upg::grammar
