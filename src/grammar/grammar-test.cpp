// The grammar layer on a tiny vocabulary: the mask against a brute-force check of every
// token, acceptance and rollback, the cache, and errors.
#include <random>

#include <gtest/gtest.h>

#include "grammar/test-vocab.h"
#include "upg/core/error.h"
#include "upg/grammar/grammar.h"

namespace upg {
namespace {

using grammar_test::tiny_tokenizer;

struct Fixture {
  Tokenizer tok = tiny_tokenizer();
  int32_t end = tok.vocab_size() - 1;
  GrammarCompiler compiler{tok, {.vocab_size = tok.vocab_size() + 3, .stop_tokens = {end}}};
};

bool allowed(const std::vector<uint32_t>& mask, int32_t id) { return (mask[size_t(id) / 32] >> (id % 32)) & 1u; }

// Brute force: a token may come next when a fresh matcher fed the prefix accepts it.
// Checked at every step of random walks through the grammar.
void check_mask_against_brute_force(Fixture& f, const GrammarSpec& spec, uint64_t seed, int walks, int steps) {
  auto g = f.compiler.compile(spec);
  std::mt19937_64 rng(seed);
  for (int w = 0; w < walks; ++w) {
    GrammarMatcher m(g);
    std::vector<int32_t> prefix;
    for (int s = 0; s < steps && !m.terminated(); ++s) {
      std::vector<uint32_t> mask(size_t(m.mask_words()), 0);
      m.fill_mask(mask);
      std::vector<int32_t> ok;
      for (int32_t id = 0; id < f.compiler.vocab_size(); ++id) {
        GrammarMatcher probe(g);
        for (int32_t t : prefix) ASSERT_TRUE(probe.accept(t));
        const bool brute = probe.accept(id);
        ASSERT_EQ(allowed(mask, id), brute) << "token " << id << " after " << prefix.size() << " tokens ("
                                            << grammar_kind_name(spec.kind) << ": " << spec.text << ")";
        if (brute) ok.push_back(id);
      }
      ASSERT_FALSE(ok.empty());
      const int32_t pick = ok[rng() % ok.size()];
      ASSERT_TRUE(m.accept(pick));
      prefix.push_back(pick);
    }
  }
}

TEST(Grammar, MaskEqualsBruteForceOnSmallGrammars) {
  Fixture f;
  check_mask_against_brute_force(f, {GrammarKind::kGbnf, R"(root ::= "a" ("b" | "ab")* "!")"}, 1, 3, 6);
  check_mask_against_brute_force(f, {GrammarKind::kRegex, "(ab|ba)+1[0-9]{1,2}"}, 2, 3, 6);
  check_mask_against_brute_force(
      f, {GrammarKind::kJsonSchema, R"({"type":"object","properties":{"a":{"type":"boolean"},"b":{"enum":[12,null]}},"required":["a","b"]})"},
      3, 2, 8);
  check_mask_against_brute_force(f, {GrammarKind::kAnyJson, ""}, 4, 2, 5);
  // Named properties and any others (JSON Schema's default): a key that is not a named
  // one begins with a character that would not continue a named key, then any string
  // content; those states' masks take the path of third_party/xgrammar-called-loop.patch.
  GrammarSpec open{GrammarKind::kJsonSchema,
                   R"({"type":"object","properties":{"ab":{"type":"integer"},"ba":{"type":"null"}},"required":["ab"]})"};
  open.any_whitespace = true;
  open.strict = false;
  check_mask_against_brute_force(f, open, 5, 6, 8);
}

// Walks `spec` in both compilers' grammars with random allowed tokens; the masks agree at
// every step.
void expect_same_masks(GrammarCompiler& a, GrammarCompiler& b, const GrammarSpec& spec, uint64_t seed, int steps) {
  GrammarMatcher ma(a.compile(spec)), mb(b.compile(spec));
  std::mt19937_64 rng(seed);
  for (int step = 0; step < steps && !ma.terminated(); ++step) {
    std::vector<uint32_t> m1(size_t(ma.mask_words()), 0), m2(size_t(mb.mask_words()), 0);
    ma.fill_mask(m1);
    mb.fill_mask(m2);
    ASSERT_EQ(m1, m2) << "step " << step << " of " << spec.text;
    std::vector<int32_t> ok;
    for (int32_t id = 0; id < a.vocab_size(); ++id)
      if (allowed(m1, id)) ok.push_back(id);
    ASSERT_FALSE(ok.empty());
    const int32_t pick = ok[rng() % ok.size()];
    ASSERT_TRUE(ma.accept(pick));
    ASSERT_TRUE(mb.accept(pick));
  }
}

// Masks reused from other grammars (the compiler's mask cache, on by default) are the
// masks computed afresh: grammars that share rules (strings, numbers, any value) compiled
// one after another by one compiler, against a compiler that reuses nothing.
TEST(Grammar, MasksReusedAcrossGrammarsAreTheFreshOnes) {
  Fixture f;
  GrammarCompiler fresh{f.tok, {.vocab_size = f.tok.vocab_size() + 3, .stop_tokens = {f.end}, .mask_cache_bytes = 0}};
  const char* schemas[] = {
      R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"}}})",
      R"({"type":"object","properties":{"ab":{"type":"string"}},"required":["ab"]})",
      R"({"type":"array","items":{"type":"object","properties":{"ba":{"type":"string"}}}})",
      R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["b"]})",
  };
  uint64_t seed = 11;
  for (const char* text : schemas)
    for (bool any_whitespace : {false, true}) {
      GrammarSpec spec{GrammarKind::kJsonSchema, text};
      spec.any_whitespace = any_whitespace;
      spec.strict = any_whitespace;  // both defaults, each way
      for (int walk = 0; walk < 3; ++walk) expect_same_masks(f.compiler, fresh, spec, seed++, 14);
    }
}

// Masks computed when first reached, and precomputed by two threads, are the masks
// precomputed by one.
TEST(Grammar, LazyMasksAndThreadsGiveTheSameMasks) {
  Fixture f;
  GrammarCompiler other{f.tok, {.vocab_size = f.tok.vocab_size() + 3, .stop_tokens = {f.end}, .threads = 2,
                                .lazy_masks = true}};
  const GrammarSpec spec{GrammarKind::kJsonSchema,
                         R"({"type":"object","properties":{"a":{"type":"array","items":{"enum":[12,"ab"]}}},"required":["a"]})"};
  expect_same_masks(f.compiler, other, spec, 7, 12);
}

TEST(Grammar, AcceptRollbackTerminate) {
  Fixture f;
  auto g = f.compiler.compile({GrammarKind::kGbnf, R"(root ::= "ab" "ba")"});
  GrammarMatcher m(g);
  const int32_t ab = f.tok.token_id(tokenizer::bytes_to_byte_level("ab"));
  const int32_t ba = f.tok.token_id(tokenizer::bytes_to_byte_level("ba"));
  ASSERT_GE(ab, 256);
  EXPECT_FALSE(m.accept(ba));  // refused, and no change
  EXPECT_TRUE(m.accept(ab));
  EXPECT_FALSE(m.complete());
  EXPECT_TRUE(m.accept(ba));
  EXPECT_TRUE(m.complete());
  EXPECT_FALSE(m.terminated());
  m.rollback(1);
  EXPECT_FALSE(m.complete());
  EXPECT_TRUE(m.accept(ba));
  EXPECT_FALSE(m.accept('x'));
  EXPECT_FALSE(m.accept(f.tok.vocab_size()));  // padding ids are never allowed
  EXPECT_TRUE(m.accept(f.end));
  EXPECT_TRUE(m.terminated());
}

TEST(Grammar, CompiledGrammarsAreCached) {
  Fixture f;
  auto a = f.compiler.compile({GrammarKind::kJsonSchema, R"({"type":"integer"})"});
  auto b = f.compiler.compile({GrammarKind::kJsonSchema, R"({"type":"integer"})"});
  EXPECT_EQ(a.get(), b.get());
  GrammarSpec loose{GrammarKind::kJsonSchema, R"({"type":"integer"})"};
  loose.any_whitespace = true;
  EXPECT_NE(f.compiler.compile(loose).get(), a.get());
  EXPECT_EQ(f.compiler.cached(), 2u);
}

std::string error_of(Fixture& f, const GrammarSpec& spec) {
  try {
    f.compiler.compile(spec);
  } catch (const ParamError& e) {
    EXPECT_EQ(e.what(), e.param() + ": " + e.problem());
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  return "no error";
}

TEST(Grammar, BadGrammarsAreOneLineErrors) {
  Fixture f;
  EXPECT_EQ(error_of(f, {GrammarKind::kGbnf, "root ::= \"a"}).rfind("grammar: ", 0), 0u);
  EXPECT_EQ(error_of(f, {GrammarKind::kRegex, "(ab"}).rfind("regex: ", 0), 0u);
  EXPECT_EQ(error_of(f, {GrammarKind::kJsonSchema, "{"}).rfind("json_schema: ", 0), 0u);
}

TEST(Grammar, UnenforcedSchemaKeywordsAreRefusedWithTheirPath) {
  Fixture f;
  auto err = [&](const char* schema) { return error_of(f, {GrammarKind::kJsonSchema, schema}); };
  EXPECT_EQ(err(R"({"type":"object","properties":{"a":{"not":{"type":"null"}}}})"),
            "json_schema: $.properties.a.not: keyword 'not' is not supported");
  EXPECT_EQ(err(R"({"type":"array","uniqueItems":true})"),
            "json_schema: $.uniqueItems: keyword 'uniqueItems' is not supported");
  // allOf and keywords beside $ref are merged (schema-rewrite-test.cpp) where that is
  // exact; two different patterns are not.
  EXPECT_EQ(err(R"({"allOf":[{"type":"string","pattern":"^a"},{"pattern":"b$"}]})"),
            "json_schema: $.allOf: allOf of more than one schema is not supported");
  EXPECT_EQ(err(R"({"$ref":"#/$defs/a","pattern":"^x","$defs":{"a":{"type":"string","pattern":"^y"}}})"),
            "json_schema: $.pattern: keyword 'pattern' beside '$ref' is not supported");
  EXPECT_EQ(err(R"({"oneOf":[{"type":"string"},{"type":"string","maxLength":3}]})"),
            "json_schema: $.oneOf: oneOf whose branches 0 and 1 may both match is not supported (use anyOf)");
  EXPECT_EQ(err(R"({"type":"string","format":"ipv4"})"), "json_schema: $.format: format 'ipv4' is not supported");
  EXPECT_EQ(err(R"({"$ref":"other.json#/a"})"),
            "json_schema: $.$ref: only references inside the schema ('#...') are supported");
  // What is enforced compiles: disjoint oneOf, enum with a type that fits, annotations.
  EXPECT_EQ(err(R"({"oneOf":[{"type":"string"},{"type":"integer"}],"description":"x"})"), "no error");
  EXPECT_EQ(err(R"({"type":"string","enum":["a","b"],"title":"t"})"), "no error");
  // oneOf branches told apart by their values, by a nested discriminator, by a literal
  // pattern, or by a property one requires and the other forbids.
  EXPECT_EQ(err(R"({"oneOf":[{"enum":["a"]},{"enum":["b","c"]}]})"), "no error");
  EXPECT_EQ(err(R"({"oneOf":[{"properties":{"c":{"type":"object","properties":{"k":{"const":1}},"required":["k"]}},"required":["c"]},
                             {"properties":{"c":{"type":"object","properties":{"k":{"const":2}},"required":["k"]}},"required":["c"]}]})"),
            "no error");
  EXPECT_EQ(err(R"({"oneOf":[{"properties":{"s":{"type":"string","pattern":"^ok$"}},"required":["s"]},
                             {"properties":{"s":{"type":"string","pattern":"^fail$"}},"required":["s"]}]})"),
            "no error");
  EXPECT_EQ(err(R"({"oneOf":[{"properties":{"a":{}},"required":["a"]},{"properties":{"b":{}},"additionalProperties":false}]})"),
            "no error");
  EXPECT_EQ(err(R"({"oneOf":[{"properties":{"a":{}},"required":["a"]},{"properties":{"b":{}},"required":["b"]}]})"),
            "json_schema: $.oneOf: oneOf whose branches 0 and 1 may both match is not supported (use anyOf)");
}

}  // namespace
}  // namespace upg
