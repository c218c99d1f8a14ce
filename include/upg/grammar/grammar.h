#pragma once
// Structured output: a grammar (GBNF, JSON Schema, a regular expression, or any JSON
// object) compiled for a tokenizer's vocabulary, and a matcher per sequence that says
// which tokens may come next. The engine behind it is XGrammar's C++ core (Apache-2.0,
// docs/GRAMMAR.md says why); none of its types appear here.
//
// Token masks are bitsets of 32-bit words: bit (id % 32) of word (id / 32) set means
// token `id` may come next. The sampler takes the same form (upg/sampling/sampling.h).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace upg {

class Tokenizer;

enum class GrammarKind {
  kGbnf,        // llama.cpp's GBNF (XGrammar's EBNF dialect): a `root` rule
  kJsonSchema,  // JSON Schema text (checked first: every keyword is enforced or refused)
  kRegex,       // a regular expression the whole output must match
  kAnyJson,     // any JSON object (`--json`, OpenAI's json_object); text unused
  // XGrammar's structural tag (JSON): text and JSON Schema parts in sequence, or tags
  // that a trigger opens within free text (the server's tool calls). Each embedded
  // JSON Schema is checked as kJsonSchema is.
  kStructuralTag,
};
const char* grammar_kind_name(GrammarKind k);  // "gbnf", "json_schema", "regex", "json"
// The parameter a ParamError about a grammar of this kind names: its kind's name, and
// "grammar" for GBNF.
const char* grammar_param(GrammarKind k);

struct GrammarSpec {
  GrammarKind kind = GrammarKind::kAnyJson;
  std::string text;
  // JSON only. Generation defaults: no whitespace but the separators ", " and ": ", and
  // properties in the schema's order: a small model left free to add whitespace can add
  // it forever. Checking instances written by others (upg grammar check / bench) wants
  // any whitespace, as JSON allows.
  bool any_whitespace = false;
  // JSON Schema only. true: an object without `additionalProperties` allows no other
  // property and an array without `items` nothing past prefixItems (OpenAI's strict
  // mode; still inside what the schema allows). false: JSON Schema's own defaults.
  bool strict = true;
  // An object's properties come in the order its schema lists them (what a reply should
  // do anyway). XGrammar's any-order mode is not offered: it does not enforce `required`
  // (it accepted invalid instances of 8 schemas of the MaskBench sample).
};

// A grammar compiled for one vocabulary. Immutable and shared between matchers and
// threads.
class CompiledGrammar;

struct GrammarCompilerOptions {
  int vocab_size = 0;  // logits per token (>= the tokenizer's vocabulary; extra ids are never allowed)
  // Tokens that end the output once the grammar is complete (the model's end of sequence).
  std::vector<int32_t> stop_tokens;
  size_t cache_entries = 64;  // compiled grammars kept (least recently used dropped)
  // Bytes of token masks kept for reuse by later grammars: the masks of rules that many
  // grammars share (a JSON string, number, any value) are then computed once per compiler
  // (XGrammar's rule-level cache, a third of this; the other two thirds keep compiled
  // grammars as `cache_entries` does). 0: none, each grammar computes all its masks.
  size_t mask_cache_bytes = size_t(256) << 20;
  // Threads that precompute a new grammar's token masks (XGrammar's compile step).
  int threads = 1;
  // Token masks computed the first time the matcher reaches a state instead of for every
  // state at compile time (XGrammar's dynamic compilation): a new grammar's first mask
  // comes sooner, each state's first mask costs more.
  bool lazy_masks = false;
};

// Compiles grammars for one vocabulary; compiled grammars are cached by (kind, text,
// options), so a repeated schema costs a lookup. Safe to call from several threads.
class GrammarCompiler {
 public:
  GrammarCompiler(const Tokenizer& tok, GrammarCompilerOptions opt);
  ~GrammarCompiler();
  GrammarCompiler(const GrammarCompiler&) = delete;
  GrammarCompiler& operator=(const GrammarCompiler&) = delete;

  // Throws ParamError("grammar", ...) for a grammar that is malformed or uses a feature
  // that is not enforced (a JSON Schema keyword: named with its JSON path).
  std::shared_ptr<const CompiledGrammar> compile(const GrammarSpec& spec);
  int vocab_size() const;
  size_t cached() const;  // entries in the cache

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where one sequence is in a grammar. Not thread-safe; one per sequence.
class GrammarMatcher {
 public:
  // stop_tokens: the tokens that end this sequence (empty: the compiler's).
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar, std::vector<int32_t> stop_tokens = {});
  ~GrammarMatcher();
  GrammarMatcher(GrammarMatcher&&) noexcept;
  GrammarMatcher& operator=(GrammarMatcher&&) noexcept;

  // Words a mask needs: ceil(vocab_size / 32).
  int mask_words() const;
  // Fills `mask` (mask_words() words) with the tokens that may come next.
  void fill_mask(std::span<uint32_t> mask);
  // Advances on `token`; false (and no change) when the grammar does not allow it.
  bool accept(int32_t token);
  // Undoes the last n accepted tokens (speculative tokens that were rejected).
  void rollback(int n);
  // A stop token was accepted: nothing may follow.
  bool terminated() const;
  // The output so far is a complete match (a stop token may come now).
  bool complete() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upg
