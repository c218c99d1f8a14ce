// upg grammar check | bench: the grammar engine on its own, against a model's vocabulary
// (only its tokenizer is read; no weights are loaded).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/grammar-bench.h"
#include "upg/core/error.h"
#include "upg/core/file-text.h"
#include "upg/core/json.h"
#include "upg/io/io.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::cli {
namespace {

// A model's vocabulary and the compiler for it.
struct Vocab {
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<GrammarCompiler> compiler;
  GrammarCompilerOptions options;  // the compiler's
  int32_t stop = -1;  // the token that ends an instance
};

Vocab load_vocab(const std::string& path, int threads = 1, bool lazy_masks = false) {
  ModelSource src = load_model_source(path, inspect_only());
  if (!src.tokenizer) throw Error(fmt::format("{}: the model has no tokenizer", path));
  Vocab v;
  v.tok = std::make_unique<Tokenizer>(*src.tokenizer);
  std::vector<int32_t> stops = v.tok->stop_ids();
  for (int id : src.config.eos_token_ids)
    if (std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);
  if (stops.empty()) throw Error(fmt::format("{}: the model names no end-of-sequence token", path));
  v.stop = stops.front();
  GrammarCompilerOptions opt;
  opt.vocab_size = std::max(src.config.vocab_size, v.tok->vocab_size());
  opt.stop_tokens = stops;
  opt.threads = threads;
  opt.lazy_masks = lazy_masks;
  v.compiler = std::make_unique<GrammarCompiler>(*v.tok, opt);
  v.options = opt;
  return v;
}

struct CheckArgs {
  std::string model, json_schema, grammar, regex, instance;
};

// Exit codes of `upg grammar check`: CLI11 returns a RuntimeError's code without a message.
constexpr int kRejected = 1, kUnsupported = 2;

void check(const CheckArgs& a) {
  GrammarSpec spec;
  if (!a.json_schema.empty()) spec = {GrammarKind::kJsonSchema, read_file_text(a.json_schema, "the JSON Schema")};
  else if (!a.grammar.empty()) spec = {GrammarKind::kGbnf, read_file_text(a.grammar, "the grammar")};
  else spec = {GrammarKind::kRegex, a.regex};
  // Checking an instance: JSON Schema's own defaults and any whitespace.
  spec.any_whitespace = true;
  spec.strict = false;
  const std::string text = read_file_text(a.instance, "the instance");
  Vocab v = load_vocab(a.model);
  std::shared_ptr<const CompiledGrammar> g;
  try {
    g = v.compiler->compile(spec);
  } catch (const ParamError& e) {
    fmt::print(stderr, "upg: unsupported: {}\n", describe_param_error(e));
    throw CLI::RuntimeError(kUnsupported);
  }
  GrammarMatcher m(g);
  const auto ids = v.tok->encode(text, false, false);
  size_t byte = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = v.tok->token_bytes(ids[i]);
    if (!m.accept(ids[i])) {
      fmt::print("rejected: token {} of {} (byte {}) {:?}\n", i, ids.size(), byte, piece);
      throw CLI::RuntimeError(kRejected);
    }
    byte += piece.size();
  }
  if (!m.accept(v.stop)) {
    fmt::print("rejected: the instance ends before the grammar does (after {} tokens)\n", ids.size());
    throw CLI::RuntimeError(kRejected);
  }
  fmt::print("accepted: {} tokens\n", ids.size());
}

struct BenchArgs {
  std::string model, dir;
  bool json = false;
  bool strict = false;
  double time_limit_s = 60;
  int jobs = 1;
  int threads = 1;
  bool lazy_masks = false;
  bool check_masks = false;
};

void bench(const BenchArgs& a) {
  Vocab v = load_vocab(a.model, a.threads, a.lazy_masks);
  // The reference: every mask of every grammar computed afresh, at compile time.
  std::unique_ptr<GrammarCompiler> reference;
  if (a.check_masks) {
    GrammarCompilerOptions opt = v.options;
    opt.mask_cache_bytes = 0;
    opt.lazy_masks = false;
    reference = std::make_unique<GrammarCompiler>(*v.tok, opt);
  }
  BenchResult r = run_maskbench(*v.compiler, *v.tok, v.stop, a.dir, a.time_limit_s, a.jobs, reference.get());
  std::map<SchemaOutcome, int> counts;
  std::vector<double> compile_us, first_us;
  for (const auto& s : r.schemas) {
    ++counts[s.outcome];
    if (s.outcome != SchemaOutcome::kUnsupported) compile_us.push_back(s.compile_us), first_us.push_back(s.first_mask_us);
  }
  const int n = int(r.schemas.size());
  auto pct = [&](std::vector<double>& v, double q) { return percentile(v, q); };
  const double c50 = pct(compile_us, 0.5), c90 = pct(compile_us, 0.9), c99 = pct(compile_us, 0.99);
  const double f50 = pct(first_us, 0.5), f90 = pct(first_us, 0.9), f99 = pct(first_us, 0.99);
  const double m50 = pct(r.mask_us, 0.5), m99 = pct(r.mask_us, 0.99), mmax = pct(r.mask_us, 1.0);
  if (a.json) {
    nlohmann::ordered_json j;
    j["schemas"] = n;
    for (auto o : {SchemaOutcome::kPassing, SchemaOutcome::kUnsupported, SchemaOutcome::kValidRejected,
                   SchemaOutcome::kInvalidAccepted, SchemaOutcome::kCrash, SchemaOutcome::kTimeout,
                   SchemaOutcome::kMaskMismatch})
      j[outcome_name(o)] = counts[o];
    j["tokens"] = r.tokens;
    j["compile_ms"] = {{"p50", c50 / 1e3}, {"p90", c90 / 1e3}, {"p99", c99 / 1e3}};
    j["first_mask_ms"] = {{"p50", f50 / 1e3}, {"p90", f90 / 1e3}, {"p99", f99 / 1e3}};
    j["mask_us"] = {{"p50", m50}, {"p99", m99}, {"max", mmax}};
    auto& list = j["results"] = nlohmann::ordered_json::array();
    for (const auto& s : r.schemas)
      list.push_back({{"file", s.file}, {"outcome", outcome_name(s.outcome)}, {"detail", s.detail},
                      {"compile_ms", s.compile_us / 1e3}});
    fmt::print("{}\n", j.dump(1));
  } else {
    for (const auto& s : r.schemas)
      if (s.outcome != SchemaOutcome::kPassing) fmt::print("{}: {}: {}\n", s.file, outcome_name(s.outcome), s.detail);
    fmt::print("schemas {}: passing {} ({:.1f}%), unsupported {}, valid rejected {}, invalid accepted {}, crashes {}, "
               "timeouts {}{}\n",
               n, counts[SchemaOutcome::kPassing], n ? 100.0 * counts[SchemaOutcome::kPassing] / n : 0.0,
               counts[SchemaOutcome::kUnsupported], counts[SchemaOutcome::kValidRejected],
               counts[SchemaOutcome::kInvalidAccepted], counts[SchemaOutcome::kCrash], counts[SchemaOutcome::kTimeout],
               a.check_masks ? fmt::format(", masks differing {}", counts[SchemaOutcome::kMaskMismatch]) : "");
    fmt::print("compile ms p50 {:.2f} p90 {:.2f} p99 {:.2f}, to the first mask p50 {:.2f} p90 {:.2f} p99 {:.2f} | "
               "mask+accept us over {} tokens: p50 {:.1f} p99 {:.1f} max {:.0f}\n",
               c50 / 1e3, c90 / 1e3, c99 / 1e3, f50 / 1e3, f90 / 1e3, f99 / 1e3, r.tokens, m50, m99, mmax);
  }
  if (a.strict && (counts[SchemaOutcome::kValidRejected] || counts[SchemaOutcome::kInvalidAccepted] ||
                   counts[SchemaOutcome::kCrash] || counts[SchemaOutcome::kTimeout] ||
                   counts[SchemaOutcome::kMaskMismatch]))
    throw CLI::RuntimeError(1);
}

// A `grammar` subcommand with its help footer and the MODEL argument both take.
CLI::App* add_grammar_subcommand(CLI::App& parent, const char* name, const char* what, const char* footer,
                                 std::string& model) {
  CLI::App* cmd = parent.add_subcommand(name, what);
  cmd->footer(footer);
  cmd->add_option("model", model, "Model whose vocabulary to use (only its tokenizer is read)")->required();
  return cmd;
}

}  // namespace

void add_grammar_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("grammar", "Check instances against a grammar or JSON Schema, or benchmark the grammar engine");
  cmd->require_subcommand(1);

  auto c = std::make_shared<CheckArgs>();
  CLI::App* chk = add_grammar_subcommand(
      *cmd, "check", "Feed a file token by token through a grammar: accepted or rejected",
      "Tokenizes INSTANCE_FILE with the model's vocabulary and feeds it to the grammar one token at a\n"
      "time, then the end-of-sequence token. Exit 0: accepted. Exit 1: rejected (the first token the\n"
      "grammar refuses, its index and byte offset). Exit 2: the schema or grammar is invalid or uses a\n"
      "feature that is not enforced (one line says which, with its JSON path).\n"
      "JSON is checked with JSON Schema's defaults and any whitespace; an object's properties must come in\n"
      "the order its schema lists them (then any others).\n"
      "Example:\n"
      "  upg grammar check models/SmolLM2-135M-Instruct.Q4_1.gguf --json-schema person.json reply.json",
      c->model);
  auto* js = chk->add_option("--json-schema", c->json_schema, "A JSON Schema file");
  auto* gr = chk->add_option("--grammar,--grammar-file", c->grammar, "A GBNF grammar file (a `root` rule)");
  auto* re = chk->add_option("--regex", c->regex, "A regular expression the whole instance must match");
  js->excludes(gr, re);
  gr->excludes(re);
  chk->add_option("instance", c->instance, "The file to check")->required();
  chk->callback([c, js, gr, re] {
    if (js->count() + gr->count() + re->count() != 1)
      throw Error("grammar check: give one of --json-schema, --grammar, --regex");
    check(*c);
  });

  auto b = std::make_shared<BenchArgs>();
  CLI::App* bn = add_grammar_subcommand(
      *cmd, "bench", "MaskBench over a folder of its files: counts, compile and mask times",
      "DIR holds files in MaskBench's format (github.com/guidance-ai/jsonschemabench, maskbench/data):\n"
      "{\"schema\": ..., \"tests\": [{\"valid\": bool, \"data\": ...}]}. Per schema: compile, then each test\n"
      "instance token by token (mask + accept timed per token). A schema passes when it compiles, every\n"
      "valid instance is accepted and every invalid one rejected. Counts as MaskBench names them;\n"
      "percentiles of compile time per schema and of mask time per token. One thread unless --jobs or\n"
      "--threads.\n"
      "Example:\n"
      "  upg grammar bench models/SmolLM2-135M-Instruct.Q4_1.gguf tests/fixtures/maskbench",
      b->model);
  bn->add_option("dir", b->dir, "Folder of MaskBench files")->required()->check(CLI::ExistingDirectory);
  bn->add_flag("--json", b->json, "Print one JSON object (counts, percentiles, each schema's outcome)");
  bn->add_flag("--strict", b->strict,
               "Exit 1 on any valid instance rejected, invalid accepted, crash, timeout or mask differing");
  bn->add_flag("--check-masks", b->check_masks,
               "Compare every mask with a second compiler's that computes each grammar's masks afresh "
               "(no masks reused across grammars); untimed, but the run takes longer");
  bn->add_option("--time-limit", b->time_limit_s, "Seconds per schema before it counts as a timeout")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bn->add_option("--jobs", b->jobs, "Schemas run at once, one thread each (quicker; timings noisier)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  bn->add_option("--threads", b->threads, "Threads that precompute a new grammar's token masks")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  bn->add_flag("--lazy-masks", b->lazy_masks,
               "Compute each state's token mask when first reached instead of at compile time");
  bn->callback([b] { bench(*b); });
}

}  // namespace upg::cli
