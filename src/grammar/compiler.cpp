// GrammarCompiler: the vocabulary handed to XGrammar once, our JSON Schema check in
// front of its converter, XGrammar's errors turned into ParamError, and an LRU cache of
// compiled grammars keyed by (kind, options, text).
#include <algorithm>
#include <list>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>
#include <xgrammar/compiler.h>

#include "grammar/compiled.h"
#include "grammar/schema-check.h"
#include "upg/core/error.h"
#include "upg/core/json.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {
namespace {

// The structural tag with every embedded JSON Schema (a {"type": "json_schema"} format's
// "json_schema") checked and prepared as a JSON Schema grammar's is.
void prepare_structural_tag(nlohmann::ordered_json& node) {
  if (node.is_array()) {
    for (auto& item : node) prepare_structural_tag(item);
    return;
  }
  if (!node.is_object()) return;
  if (node.value("type", "") == "json_schema" && node.contains("json_schema")) {
    node["json_schema"] = grammar::prepare_json_schema(node["json_schema"]);
    return;
  }
  for (auto& [key, value] : node.items()) prepare_structural_tag(value);
}

// XGrammar's messages may span lines and start with "[time] file:line: "; ours are one
// line that says what is wrong.
std::string one_line(std::string s) {
  if (s.starts_with("[")) {
    const size_t file = s.find("] ");
    const size_t msg = file == std::string::npos ? file : s.find(": ", file);
    if (msg != std::string::npos) s = s.substr(msg + 2);
  }
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// The vocabulary as XGrammar takes it: each token's raw bytes; special and control
// tokens as "" (XGrammar never allows those as text), padding ids past the tokenizer
// likewise through vocab_size.
xgrammar::TokenizerInfo make_tokenizer_info(const Tokenizer& tok, const GrammarCompilerOptions& opt) {
  if (opt.vocab_size < tok.vocab_size())
    throw ParamError("vocab_size", fmt::format("{} is below the tokenizer's {} tokens", opt.vocab_size,
                                               tok.vocab_size()));
  std::vector<std::string> vocab(size_t(tok.vocab_size()));
  for (int32_t id = 0; id < tok.vocab_size(); ++id)
    if (!tok.is_special(id)) vocab[size_t(id)] = tok.token_bytes(id);
  return xgrammar::TokenizerInfo(vocab, xgrammar::VocabType::RAW, opt.vocab_size, opt.stop_tokens);
}

}  // namespace

const char* grammar_param(GrammarKind k) { return k == GrammarKind::kGbnf ? "grammar" : grammar_kind_name(k); }

const char* grammar_kind_name(GrammarKind k) {
  switch (k) {
    case GrammarKind::kGbnf: return "gbnf";
    case GrammarKind::kJsonSchema: return "json_schema";
    case GrammarKind::kRegex: return "regex";
    case GrammarKind::kAnyJson: return "json";
    case GrammarKind::kStructuralTag: return "structural_tag";
  }
  return "?";
}

struct GrammarCompiler::Impl {
  Impl(const Tokenizer& tok, GrammarCompilerOptions o)
      : opt(std::move(o)),
        info(make_tokenizer_info(tok, opt)),
        // XGrammar's cache: its rule-level part keeps each rule's token masks (keyed by a
        // hash of the rule's automaton and those it calls), so the rules every JSON Schema
        // shares (strings, numbers, any value, whitespace) are computed once per compiler
        // instead of once per schema. Its grammar-level part repeats ours (below, keyed on
        // the text before the check) within the same budget.
        xg(info, std::max(1, opt.threads), /*cache_enabled=*/opt.mask_cache_bytes > 0,
           /*max_memory_bytes=*/opt.mask_cache_bytes > 0 ? int64_t(opt.mask_cache_bytes) : -1, opt.lazy_masks) {}

  std::shared_ptr<const CompiledGrammar> build(const GrammarSpec& spec) {
    const char* param = grammar_param(spec.kind);
    // JSON text (a schema, a structural tag), its parse error without the "<param>: " prefix
    // ParamError adds again.
    auto parse_text = [&] {
      try {
        return parse_json<nlohmann::ordered_json>(spec.text, param);
      } catch (const Error& e) {
        throw ParamError(param, std::string(e.what()).substr(std::string_view(param).size() + 2));
      }
    };
    try {
      switch (spec.kind) {
        case GrammarKind::kGbnf: return wrap(xg.CompileGrammar(spec.text, "root"));
        case GrammarKind::kRegex: return wrap(xg.CompileRegex(spec.text));
        case GrammarKind::kAnyJson:
          return wrap(xg.CompileJSONSchema(R"({"type":"object"})", spec.any_whitespace, std::nullopt,
                                           std::nullopt, /*strict_mode=*/false));
        case GrammarKind::kStructuralTag: {
          nlohmann::ordered_json tag = parse_text();
          prepare_structural_tag(tag);
          return wrap(xg.CompileStructuralTag(tag.dump()));
        }
        case GrammarKind::kJsonSchema: {
          return wrap(xg.CompileJSONSchema(grammar::prepare_json_schema(parse_text()).dump(), spec.any_whitespace,
                                           std::nullopt, std::nullopt, spec.strict));
        }
      }
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw ParamError(param, one_line(e.what()));
    }
    throw ParamError(param, "unknown grammar kind");
  }

  std::shared_ptr<const CompiledGrammar> wrap(xgrammar::CompiledGrammar g) {
    return std::make_shared<const CompiledGrammar>(std::move(g), opt.vocab_size, opt.stop_tokens);
  }

  GrammarCompilerOptions opt;
  xgrammar::TokenizerInfo info;
  xgrammar::GrammarCompiler xg;
  std::mutex mu;  // the cache
  using Entry = std::pair<std::string, std::shared_ptr<const CompiledGrammar>>;
  std::list<Entry> lru;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index;
};

GrammarCompiler::GrammarCompiler(const Tokenizer& tok, GrammarCompilerOptions opt)
    : impl_(std::make_unique<Impl>(tok, std::move(opt))) {}
GrammarCompiler::~GrammarCompiler() = default;

int GrammarCompiler::vocab_size() const { return impl_->opt.vocab_size; }

size_t GrammarCompiler::cached() const {
  std::lock_guard lock(impl_->mu);
  return impl_->lru.size();
}

std::shared_ptr<const CompiledGrammar> GrammarCompiler::compile(const GrammarSpec& spec) {
  Impl& m = *impl_;
  const bool json = spec.kind == GrammarKind::kJsonSchema || spec.kind == GrammarKind::kAnyJson;
  std::string key = fmt::format("{}/{}/{}\n", grammar_kind_name(spec.kind), json && spec.any_whitespace,
                                spec.kind == GrammarKind::kJsonSchema && spec.strict);
  if (spec.kind != GrammarKind::kAnyJson) key += spec.text;
  {
    std::lock_guard lock(m.mu);
    if (auto it = m.index.find(key); it != m.index.end()) {
      m.lru.splice(m.lru.begin(), m.lru, it->second);
      return it->second->second;
    }
  }
  // Compiled outside the lock: other threads' grammars do not wait for this one.
  auto compiled = m.build(spec);
  std::lock_guard lock(m.mu);
  if (m.index.count(key)) return compiled;
  m.lru.emplace_front(key, compiled);
  m.index[key] = m.lru.begin();
  while (m.lru.size() > std::max<size_t>(1, m.opt.cache_entries)) {
    m.index.erase(m.lru.back().first);
    m.lru.pop_back();
  }
  return compiled;
}

}  // namespace upg
