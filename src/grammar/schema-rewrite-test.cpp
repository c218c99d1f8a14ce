// The JSON Schema rewrites (schema-rewrite.h): each one's output, and the compiled
// grammar accepting exactly the instances JSON Schema says are valid (the tiny
// vocabulary spells any JSON text byte by byte).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "grammar/schema-check.h"
#include "grammar/schema-rewrite.h"
#include "grammar/schema-values.h"
#include "grammar/test-vocab.h"
#include "upg/core/error.h"
#include "upg/grammar/grammar.h"

namespace upg {
namespace {

using json = nlohmann::ordered_json;

class SchemaRewrite : public ::testing::Test {
 protected:
  Tokenizer tok = grammar_test::tiny_tokenizer();
  int32_t end = tok.vocab_size() - 1;
  GrammarCompiler compiler{tok, {.vocab_size = tok.vocab_size(), .stop_tokens = {end}}};

  // Compared without regard to key order.
  static nlohmann::json rewrite(const char* schema) {
    return nlohmann::json::parse(grammar::rewrite_json_schema(json::parse(schema)).dump());
  }

  // Whether the compiled schema takes the instance whole (JSON Schema's defaults, any
  // whitespace: as `upg grammar check` reads instances).
  bool accepts(const char* schema, const char* instance) {
    GrammarSpec spec{GrammarKind::kJsonSchema, schema};
    spec.any_whitespace = true;
    spec.strict = false;
    GrammarMatcher m(compiler.compile(spec));
    for (int32_t id : tok.encode(instance, false, false))
      if (!m.accept(id)) return false;
    return m.accept(end);
  }

  void expect_language(const char* schema, std::initializer_list<const char*> valid,
                       std::initializer_list<const char*> invalid) {
    for (const char* v : valid) EXPECT_TRUE(accepts(schema, v)) << schema << " should accept " << v;
    for (const char* v : invalid) EXPECT_FALSE(accepts(schema, v)) << schema << " should reject " << v;
  }

  static std::string refusal(const char* schema) {
    try {
      grammar::prepare_json_schema(json::parse(schema));
    } catch (const ParamError& e) {
      return e.what();
    }
    return "no error";
  }
};

TEST_F(SchemaRewrite, AllOfOfObjectsIsOneObject) {
  const char* s = R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},
                               {"properties":{"b":{"type":"string"}},"required":["b"]}]})";
  EXPECT_EQ(rewrite(s), nlohmann::json::parse(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},
                                       "required":["a","b"]})"));
  expect_language(s, {R"({"a":1,"b":"x"})"}, {R"({"a":1})", R"({"b":"x"})", R"({"a":"1","b":"x"})", "3"});
  // Bounds tighten, types intersect (integer within number), annotations do not matter.
  EXPECT_EQ(rewrite(R"({"allOf":[{"type":"number","minimum":1,"maximum":9,"title":"x"},
                                 {"type":["integer","null"],"minimum":3,"title":"y"}]})"),
            nlohmann::json::parse(R"({"type":"integer","minimum":3,"maximum":9,"title":"x"})"));
  expect_language(R"({"allOf":[{"type":"number","maximum":9},{"type":"integer","minimum":3}]})", {"3", "9"},
                  {"2", "10", "4.5"});
}

TEST_F(SchemaRewrite, AdditionalPropertiesOfOneSideHoldTheOthersProperties) {
  const char* s = R"({"allOf":[{"type":"object","additionalProperties":{"type":"string"}},
                               {"properties":{"b":{"maxLength":2}}}]})";
  expect_language(s, {R"({"b":"ab"})", R"({"c":"x"})"}, {R"({"b":"abc"})", R"({"b":1})", R"({"c":1})"});
}

TEST_F(SchemaRewrite, WhatCannotBeMergedExactlyIsRefused) {
  EXPECT_EQ(refusal(R"({"allOf":[{"type":"string"},{"type":"integer"}]})"),
            "json_schema: $.allOf: allOf of more than one schema is not supported");
  EXPECT_EQ(refusal(R"({"allOf":[{"type":"object","properties":{"a":{}},"additionalProperties":false},
                                 {"properties":{"b":{"type":"integer"}}}]})"),
            "json_schema: $.allOf: allOf of more than one schema is not supported");
  // Self-references that branch at every level end (a budget), and are refused.
  EXPECT_EQ(refusal(R"({"allOf":[{"$ref":"#"},{"$ref":"#"},{"$ref":"#"}],"type":"object"})"),
            "json_schema: $.type: keyword 'type' beside 'allOf' is not supported");
  // A reference into the allOf: rewriting it would change what the reference means.
  EXPECT_EQ(refusal(R"({"allOf":[{"type":"object"},{"required":["a"]}],"properties":{"x":{"$ref":"#/allOf/1"}}})"),
            "json_schema: $.properties: keyword 'properties' beside 'allOf' is not supported");
}

TEST_F(SchemaRewrite, SiblingsOfAnyOfAndOneOfGoIntoEachBranch) {
  const char* s = R"({"type":"object","required":["a"],
                      "anyOf":[{"properties":{"a":{"type":"string"}}},{"properties":{"a":{"type":"integer"}}}]})";
  EXPECT_EQ(rewrite(s), nlohmann::json::parse(R"({"anyOf":[
      {"type":"object","required":["a"],"properties":{"a":{"type":"string"}}},
      {"type":"object","required":["a"],"properties":{"a":{"type":"integer"}}}]})"));
  expect_language(s, {R"({"a":"x"})", R"({"a":1})"}, {"{}", R"({"a":true})", R"("x")"});
  // A discriminator XGrammar can tell apart once each branch is an object.
  const char* one = R"({"type":"object","oneOf":[{"properties":{"k":{"const":"a"},"n":{"type":"integer"}},"required":["k"]},
                                                 {"properties":{"k":{"const":"b"}},"required":["k"]}]})";
  expect_language(one, {R"({"k":"a","n":1})", R"({"k":"b"})"}, {R"({"k":"c"})", R"({"k":"a","n":"x"})", "[]"});
}

TEST_F(SchemaRewrite, RefSiblingsApplyFrom2019AndAreIgnoredBefore) {
  const char* now = R"({"$defs":{"s":{"type":"string"}},"$ref":"#/$defs/s","maxLength":2})";
  EXPECT_EQ(rewrite(now), nlohmann::json::parse(R"({"type":"string","maxLength":2,"$defs":{"s":{"type":"string"}}})"));
  expect_language(now, {R"("ab")"}, {R"("abc")", "1"});
  const char* draft7 = R"({"$schema":"http://json-schema.org/draft-07/schema#",
                           "definitions":{"s":{"type":"string"}},"$ref":"#/definitions/s","maxLength":2})";
  expect_language(draft7, {R"("ab")", R"("abc")"}, {"1"});
}

TEST_F(SchemaRewrite, EnumBesideOtherKeywordsKeepsTheValuesTheyAccept) {
  EXPECT_EQ(rewrite(R"({"type":"string","enum":["a",1,null]})"), nlohmann::json::parse(R"({"enum":["a"]})"));
  EXPECT_EQ(rewrite(R"({"enum":["ab","abcd",7],"maxLength":3})"), nlohmann::json::parse(R"({"enum":["ab",7]})"));
  const char* s = R"({"allOf":[{"enum":[{"foo":1},{"foo":2}]},{"not":{"properties":{"foo":{"const":2}}}}]})";
  EXPECT_EQ(rewrite(s), nlohmann::json::parse(R"({"enum":[{"foo":1}]})"));
  expect_language(s, {R"({"foo":1})"}, {R"({"foo":2})"});
  // A keyword the value check does not evaluate (format) leaves the schema to the check.
  EXPECT_EQ(refusal(R"({"enum":["a"],"format":"email"})"),
            "json_schema: $.format: keyword 'format' beside 'enum' is not supported");
}

TEST_F(SchemaRewrite, Draft4TuplesAndBooleanBounds) {
  const char* s = R"({"type":"array","items":[{"type":"integer"},{"type":"string"}],"additionalItems":{"type":"boolean"}})";
  EXPECT_EQ(rewrite(s), nlohmann::json::parse(R"({"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}],
                                       "items":{"type":"boolean"}})"));
  expect_language(s, {R"([1,"a",true])", "[1]"}, {R"([1,"a",2])", R"(["a"])"});
  EXPECT_EQ(rewrite(R"({"type":"array","additionalItems":false})"), nlohmann::json::parse(R"({"type":"array"})"));
  const char* b = R"({"type":"integer","minimum":3,"exclusiveMinimum":true,"maximum":9,"exclusiveMaximum":false})";
  EXPECT_EQ(rewrite(b), nlohmann::json::parse(R"({"type":"integer","exclusiveMinimum":3,"maximum":9})"));
  expect_language(b, {"4", "9"}, {"3", "10"});
}

TEST_F(SchemaRewrite, TypedKeywordWithoutTypeLetsOtherTypesThrough) {
  const char* s = R"({"minLength":2})";
  EXPECT_EQ(rewrite(s), nlohmann::json::parse(R"({"minLength":2,"type":["null","boolean","number","string","array","object"]})"));
  expect_language(s, {R"("ab")", "5", "null", "[]"}, {R"("a")"});
}

TEST_F(SchemaRewrite, LengthsBesideOneRepeatedClassGoIntoThePattern) {
  const char* s = R"({"type":"string","pattern":"^[a-z.-]+$","minLength":2,"maxLength":3})";
  EXPECT_EQ(rewrite(s), nlohmann::json::parse(R"({"type":"string","pattern":"^[a-z.-]{2,3}$"})"));
  expect_language(s, {R"("ab")", R"("a-c")"}, {R"("a")", R"("abcd")", R"("aB")"});
  EXPECT_EQ(rewrite(R"({"type":"string","pattern":"^\\w*$","maxLength":4})"),
            nlohmann::json::parse(R"({"type":"string","pattern":"^\\w{0,4}$"})"));
  // Anything else stays as written, for the check to refuse.
  EXPECT_EQ(refusal(R"({"type":"string","pattern":"^a[bc]+$","minLength":2})"),
            "json_schema: $: minLength/maxLength beside 'pattern' is not supported");
}

TEST_F(SchemaRewrite, DependentRequiredBecomesRequiredOrBranchesOnPresence) {
  // A required trigger: its names are required too, to a fixed point.
  const char* req = R"({"type":"object","dependentRequired":{"a":["b"],"b":["ba"]},"required":["a"]})";
  EXPECT_EQ(rewrite(req),
            nlohmann::json::parse(R"({"type":"object","required":["a","b","ba"],"properties":{"a":{},"b":{},"ba":{}}})"));
  expect_language(req, {R"({"a":1,"b":2,"ba":3})"}, {R"({"a":1,"b":2})", R"({"a":1})"});
  // Where no other property may come: the trigger absent, or present with its names.
  const char* closed = R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},
                           "additionalProperties":false,"dependencies":{"a":["b"]}})";
  EXPECT_EQ(rewrite(closed), nlohmann::json::parse(R"({"anyOf":[
      {"type":"object","properties":{"b":{"type":"integer"}},"additionalProperties":false},
      {"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"additionalProperties":false,
       "required":["a","b"]}]})"));
  expect_language(closed, {"{}", R"({"b":1})", R"({"a":1,"b":2})"}, {R"({"a":1})", R"({"ab":1})", R"({"a":1,"b":"x"})"});
  // Names already required, or a trigger that cannot be present: nothing asked.
  EXPECT_EQ(rewrite(R"({"type":"object","required":["b"],"dependentRequired":{"a":["b"]}})"),
            nlohmann::json::parse(R"({"type":"object","required":["b"],"properties":{"b":{}}})"));
  // Other properties allowed and the trigger not required: not exact, refused.
  EXPECT_EQ(refusal(R"({"type":"object","dependentRequired":{"a":["b"]}})"),
            "json_schema: $.dependentRequired: keyword 'dependentRequired' is not supported");
  EXPECT_EQ(refusal(R"({"type":"object","dependencies":{"a":{"required":["b"]}}})"),
            "json_schema: $.dependencies: keyword 'dependencies' is not supported");
}

// XGrammar enforces `required` for named properties only: the others are named.
TEST_F(SchemaRewrite, RequiredNamesBecomeProperties) {
  const char* s = R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["b"]})";
  EXPECT_EQ(rewrite(s), nlohmann::json::parse(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{}},"required":["b"]})"));
  expect_language(s, {R"({"b":null})", R"({"a":1,"b":[1]})"}, {"{}", R"({"a":1})"});
  const char* held = R"({"type":"object","additionalProperties":{"type":"integer"},"required":["b"]})";
  expect_language(held, {R"({"b":1})", R"({"b":1,"a":2})"}, {"{}", R"({"b":"x"})", R"({"a":2})"});
  EXPECT_EQ(refusal(R"({"type":"object","additionalProperties":false,"required":["b"]})"),
            "json_schema: $.required: required property \"b\" that is not in 'properties' is not supported");
}

TEST(SchemaValues, EqualityAsJsonSchemaHasItAndUnknownsSaidSo) {
  auto valid = [](const char* value, const char* schema) {
    const json s = json::parse(schema);
    return grammar::value_is_valid(json::parse(value), s, s);
  };
  EXPECT_EQ(valid(R"({"b":2,"a":1})", R"({"const":{"a":1.0,"b":2}})"), true);
  EXPECT_EQ(valid("true", R"({"enum":[1]})"), false);
  EXPECT_EQ(valid("3.0", R"({"type":"integer","multipleOf":3})"), true);
  EXPECT_EQ(valid(R"("x@y")", R"({"format":"email"})"), std::nullopt);
  EXPECT_EQ(valid("1", R"({"format":"email"})"), true);  // format applies to strings only
  EXPECT_EQ(valid(R"({"a":"abc"})", R"({"patternProperties":{"^a":{"maxLength":2}}})"), false);
  EXPECT_EQ(valid(R"([1,2])", R"({"$defs":{"i":{"type":"integer"}},"items":{"$ref":"#/$defs/i"},"maxItems":2})"), true);
  EXPECT_EQ(valid(R"("ab")", R"({"anyOf":[{"format":"date"},{"maxLength":1}]})"), std::nullopt);
  EXPECT_EQ(valid(R"("ab")", R"({"not":{"anyOf":[{"format":"date"},{"maxLength":2}]}})"), false);
  // Patterns std::regex is not trusted with: unknown.
  EXPECT_EQ(valid(R"("aa")", R"({"pattern":"(a{9999}){9999}"})"), std::nullopt);
  EXPECT_TRUE(grammar::regex_is_small("^v2023[a-z]{1,8}$"));
  EXPECT_FALSE(grammar::regex_is_small("(a{9999}){9999}"));
}

}  // namespace
}  // namespace upg
