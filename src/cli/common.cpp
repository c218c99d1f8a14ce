#include "cli/common.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <limits>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "upg/kernels/backend.h"
#include "upg/core/error.h"
#include "upg/core/file-text.h"
#include "upg/core/thread-pool.h"
#include "upg/kernels/cpu.h"

namespace upg::cli {

std::string describe_param_error(const ParamError& e) {
  struct Flag {
    const char* param;
    const char* flag;
    const char* hint;
  };
  static constexpr Flag kFlags[] = {
      {"temperature", "--temp", ""},
      {"top_k", "--top-k", ""},
      {"top_p", "--top-p", ""},
      {"min_p", "--min-p", ""},
      {"repeat_penalty", "--repeat-penalty", ""},
      {"frequency_penalty", "--frequency-penalty", ""},
      {"presence_penalty", "--presence-penalty", ""},
      {"penalty_last_n", "--repeat-last-n", ""},
      {"n_threads", "-t/--threads", ""},
      {"context_length", "-c/--ctx-size", ""},
      {"max_new_tokens", "-n/--n-predict", " (lower -n or raise -c)"},
      {"prompt", "the prompt", " (raise -c)"},
      {"stop_strings", "-r/--stop", ""},
      {"max_step_tokens", "--batch-tokens", ""},
      {"kv_memory", "--kv-memory", ""},
      {"tensor_parallel", "--tensor-parallel", ""},
      {"max_running", "--max-seqs", ""},
      {"lookup_max_draft", "--lookup", ""},
      {"draft", "--draft", ""},
      {"draft_max", "--draft-max", ""},
      {"batch_invariant", "--batch-invariant", ""},
      {"sparsity", "--sparsity", ""},
      {"values", "--values", ""},
      {"group_size", "--group-size", ""},
      {"output", "-o/--output", ""},
      {"gguf_type", "--gguf", ""},
      {"prune", "--prune", " (use --prune magnitude)"},
      {"gptq", "--gptq", ""},
      {"calib_tokens", "--calib-tokens", ""},
      {"act_order", "--act-order", ""},
      {"gptq_head", "--gptq-head", ""},
      {"target_bpw", "--target-bpw", ""},
      {"chat_template", "the chat template", " (use --raw)"},
      {"json_schema", "--json-schema", ""},
      {"grammar", "--grammar-file", ""},
      {"regex", "--regex", ""},
      {"json", "--json", ""},
  };
  for (const Flag& f : kFlags)
    if (e.param() == f.param) return fmt::format("{}: {}{}", f.flag, e.problem(), f.hint);
  return e.what();
}

LoadOptions inspect_only() {
  LoadOptions o;
  o.as_stored = true;
  return o;
}

void add_model_options(CLI::App& app, ModelArgs& a, bool with_runtime) {
  app.add_option("model", a.path, "Model: a .gguf file, a .safetensors file or a Hugging Face directory")->required();
  if (!with_runtime) return;
  add_threads_option(app, a.threads, "Threads for the forward pass (default: every core)");
  app.add_option("-c,--ctx-size", a.ctx,
                 "Context length in tokens: prompt plus generation (default: the model's, at most 8192)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  add_dtype_option(app, a);
  add_cache_type_option(app, a);
  add_reference_kernels_flag(app, a);
  add_device_option(app, a);
  app.add_flag("--profile", a.profile,
               "Time every backend op and print where the time went (per op and per weight kind) at the end");
}

void add_dtype_option(CLI::App& app, ModelArgs& a) {
  app.add_option("--dtype", a.dtype,
                 "Dequantize GGUF block-quantized weights (Q4_0 ... IQ4_XS) to this float type at load instead of "
                 "running them as stored with the integer kernels (the default): more memory, for comparisons")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
}

void add_threads_option(CLI::App& app, int& threads, const std::string& help) {
  app.add_option("-t,--threads", threads, help)->check(CLI::Range(0, ThreadPool::kMaxThreads));
}

void add_cache_type_option(CLI::App& app, ModelArgs& a) {
  app.add_option("--cache-type", a.cache_type,
                 "KV cache element type: f16 halves its memory and the bytes each decode step reads; f32 is exact; "
                 "int8 (one scale per head and position) halves f16 again, for long contexts, at a small cost "
                 "in accuracy (docs/KERNELS.md, Attention)")
      ->check(CLI::IsMember({"f16", "f32", "int8"}))
      ->capture_default_str();
}

void add_device_option(CLI::App& app, ModelArgs& a) {
  app.add_option("--device", a.device,
                 "Where the forward pass runs: cpu, or cuda (the whole model on GPU 0; needs a build with the CUDA "
                 "backend and an NVIDIA GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
}

void add_tensor_parallel_option(CLI::App& app, ModelArgs& a) {
  app.add_option("--tensor-parallel", a.tensor_parallel,
                 "Split the model over this many ranks: with --device cuda, GPUs 0 .. N-1 through NCCL (each "
                 "holds its share of the heads, MLP columns and vocabulary, and of the KV cache; --kv-memory is "
                 "per GPU); on the CPU, groups of threads (a check of the split, not a speed-up)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
}

void add_reference_kernels_flag(CLI::App& app, ModelArgs& a) {
  app.add_flag("--reference-kernels", a.reference_kernels,
               "Run int8 and compressed weights through the plain reference kernels (fp32 activations) instead "
               "of the fast int8 ones: slow, for comparisons");
}

std::unique_ptr<Model> load_model(const ModelArgs& a, double* load_seconds) {
  ModelOptions opts;
  opts.n_threads = a.threads;
  opts.context_length = a.ctx;
  opts.reference_kernels = a.reference_kernels;
  opts.profile = a.profile;
  opts.device = a.device == "cuda" ? Device::Cuda : Device::Cpu;
  opts.kv_type = a.cache_type == "f32" ? DType::F32 : a.cache_type == "int8" ? DType::I8 : DType::F16;
  opts.kv_memory_bytes = int64_t(a.kv_memory_mib * double(1 << 20));
  opts.max_sequences = a.max_sequences;
  opts.tensor_parallel = a.tensor_parallel;
  if (!a.dtype.empty())
    opts.load.dequant_to = a.dtype == "f16" ? DType::F16 : a.dtype == "bf16" ? DType::BF16 : DType::F32;
  auto t0 = std::chrono::steady_clock::now();
  auto model = Model::from_file(a.path, opts);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (load_seconds) *load_seconds = s;
  for (const std::string& w : model->source().warnings) fmt::print(stderr, "upg: warning: {}\n", w);
  const ModelConfig& c = model->config();
  // The KV cache's size is what the whole context would take; pages are touched only as
  // it fills, so peak memory at the end of a run shows what was used.
  fmt::print(stderr,
             "upg: loaded {} ({}, {} layers, hidden {}, vocab {}) in {:.2f} s on {}{}, context {}, KV cache {} "
             "{:.1f} MiB{} ({} blocks of {} tokens)\n",
             a.path, c.architecture, c.num_layers, c.hidden_size, c.vocab_size, s, model->backend().name(),
             a.tensor_parallel > 1 ? fmt::format(" and {} more ranks", a.tensor_parallel - 1) : "",
             model->context_length(), a.cache_type, double(model->backend().kv_bytes()) / (1 << 20),
             a.tensor_parallel > 1 ? " on rank 0" : "", model->kv_blocks(), model->kv_block_size());
  return model;
}

void add_engine_options(CLI::App& app, EngineArgs& a, ModelArgs& model) {
  EngineOptions& o = a.options;
  app.add_option("--kv-memory", model.kv_memory_mib,
                 "KV cache pool in MiB, shared by all sequences in blocks of 16 tokens (default: the whole context)")
      ->check(CLI::Range(0.0, 1e9));
  add_tensor_parallel_option(app, model);
  app.add_option("--max-seqs", o.limits.max_running, "Sequences in one forward pass at most")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()))
      ->capture_default_str();
  app.add_option("--batch-tokens", o.limits.max_step_tokens,
                 "Tokens of all sequences in one forward pass at most (long prompts run in chunks)")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()))
      ->capture_default_str();
  app.add_flag("--no-prefix-cache", a.no_prefix_cache,
               "Do not share the KV cache blocks of identical prompt prefixes between requests and turns");
  app.add_flag("--batch-invariant", o.batch_invariant,
               "Every request gives the same tokens (with the same seed) whatever else runs beside it: each token "
               "keeps to the decode or the prompt kernels whatever the batch's size. Slower where many sequences "
               "decode at once");
  app.add_option("--lookup", o.speculative.lookup,
                 "Speculative decoding by prompt lookup: up to N draft tokens per step from earlier matches in the "
                 "context (rewrites, extractions, code edits); 0: off")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_option("--draft", a.draft,
                 "Speculative decoding with a draft model: a smaller or more strongly compressed model with the same "
                 "vocabulary proposes tokens that the model verifies in one forward pass");
  app.add_option("--draft-max", o.speculative.draft_max, "Draft tokens per step at most with --draft")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
}

std::unique_ptr<Model> load_draft_model(const ModelArgs& model, const EngineArgs& a) {
  if (a.draft.empty()) return nullptr;
  ModelArgs d = model;
  d.path = a.draft;
  d.profile = false;
  d.tensor_parallel = 1;  // a draft model is small: one rank
  return load_model(d);
}

EngineOptions finish_engine_args(const EngineArgs& a, Model* draft) {
  EngineOptions o = a.options;
  o.prefix_sharing = !a.no_prefix_cache;
  o.speculative.draft = draft;
  return o;
}

void add_generation_options(CLI::App& app, GenerationArgs& a) {
  Request& p = a.request;
  SamplingParams& s = p.sampling;
  app.add_option("-n,--n-predict", p.max_new_tokens, "Tokens to generate at most; -1: until the context is full")
      ->capture_default_str();
  app.add_option("--temp", s.temperature, "Temperature; 0 means greedy (always the most likely token)")
      ->capture_default_str();
  app.add_option("--top-k", s.top_k, "Keep the K most likely tokens; 0 disables")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  app.add_option("--top-p", s.top_p, "Nucleus sampling: keep the smallest set with this much mass; 1 disables")
      ->capture_default_str();
  app.add_option("--min-p", s.min_p, "Drop tokens less likely than this fraction of the best one; 0 disables")
      ->capture_default_str();
  app.add_option("--repeat-penalty", s.repeat_penalty, "Penalise repeated tokens (1 disables)")->capture_default_str();
  app.add_option("--repeat-last-n", s.penalty_last_n, "How many recent tokens the penalties look at; -1: all")
      ->capture_default_str();
  app.add_option("--frequency-penalty", s.frequency_penalty, "Subtract penalty x count for each seen token")
      ->capture_default_str();
  app.add_option("--presence-penalty", s.presence_penalty, "Subtract penalty once for each seen token")
      ->capture_default_str();
  app.add_option("-s,--seed", a.seed_text, "Random seed; -1 picks one (same seed, same output)")
      ->default_str("-1");
  app.add_option("-r,--reverse-prompt,--stop", p.stop_strings, "Stop when this text is generated (repeatable)");
  app.add_flag("--ignore-eos", p.ignore_eos, "Keep generating past the end-of-sequence token");
  app.add_flag("-v,--verbose", a.verbose, "Print the sampler chain and token counts");
  add_grammar_options(app, a.grammar);
}

void add_grammar_options(CLI::App& app, GrammarArgs& a) {
  auto* g = app.add_option("--grammar-file", a.grammar_file,
                           "Constrain the output to a GBNF grammar (llama.cpp's syntax; a `root` rule)");
  auto* js = app.add_option("--json-schema", a.json_schema_file,
                            "Constrain the output to JSON valid under this JSON Schema file (unsupported keywords "
                            "are refused, naming their path)");
  auto* j = app.add_flag("--json", a.json, "Constrain the output to a JSON object");
  g->excludes(js, j);
  js->excludes(j);
}

Request finish_generation_args(GenerationArgs& a) {
  if (!a.seed_text.empty() && a.seed_text != "-1") {
    try {
      // stoull reads "-2" as 2^64 - 2: only -1 is special, so a sign is an error.
      if (a.seed_text[0] == '-' || a.seed_text[0] == '+') throw std::invalid_argument("sign");
      size_t used = 0;
      unsigned long long v = std::stoull(a.seed_text, &used);
      if (used != a.seed_text.size()) throw std::invalid_argument("trailing text");
      a.request.sampling.seed = v;
    } catch (const std::exception&) {
      throw Error(fmt::format("--seed: '{}' is not a non-negative integer or -1", a.seed_text));
    }
  }
  if (a.request.max_new_tokens < -1) throw Error("--n-predict: must be -1 or more");
  a.request.grammar = finish_grammar_args(a.grammar);
  // The Sampler validates its flags; building one here reports a bad --top-p before a
  // model load that can take minutes.
  Sampler check(a.request.sampling);
  (void)check;
  return a.request;
}

std::optional<GrammarSpec> finish_grammar_args(const GrammarArgs& a) {
  if (!a.grammar_file.empty()) return GrammarSpec{GrammarKind::kGbnf, read_file_text(a.grammar_file, "the grammar file")};
  if (!a.json_schema_file.empty())
    return GrammarSpec{GrammarKind::kJsonSchema, read_file_text(a.json_schema_file, "the JSON Schema file")};
  if (a.json) return GrammarSpec{GrammarKind::kAnyJson, ""};
  return std::nullopt;
}

void write_stdout(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    throw OutputError(fmt::format("standard output: write failed: {}", std::strerror(errno)));
}

bool finish_stdout() {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
  fmt::print(stderr, "upg: error: standard output: write failed: {}\n", std::strerror(errno));
  return false;
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

void print_stats(const GenerateStats& st, double load_seconds) {
  fmt::print(stderr,
             "\nupg: load {:.2f} s | prompt {} tokens ({} computed), {:.1f} tok/s | generated {} tokens, "
             "{:.1f} tok/s | stop: {} | peak memory {:.0f} MiB\n",
             load_seconds, st.prompt_tokens, st.prefilled_tokens, st.prompt_tok_per_s(), st.generated_tokens,
             st.decode_tok_per_s(), stop_reason_name(st.stop_reason), peak_rss_mib());
  if (st.drafted_tokens > 0)
    fmt::print(stderr, "upg: speculative: drafted {}, accepted {} ({:.0f}%), {:.2f} tokens per forward pass\n",
               st.drafted_tokens, st.accepted_tokens, 100.0 * double(st.accepted_tokens) / double(st.drafted_tokens),
               st.tokens_per_forward());
}

void print_profile(const Model& model) {
  const std::vector<OpProfile> rows = model.profile();
  size_t width = 52;  // the op column fits the longest name (a group of weights runs long)
  for (const OpProfile& r : rows) width = std::max(width, r.name.size());
  for (const bool single : {false, true}) {
    double total = 0;
    for (const OpProfile& r : rows) total += r.single_token == single ? r.seconds : 0;
    if (total == 0) continue;
    fmt::print(stderr, "\nupg: profile of {}: wall time inside each backend op\n",
               single ? "single-token calls (decode steps)" : "calls of several tokens (prompt)");
    fmt::print(stderr, "  {:<{}} {:>6} {:>9} {:>6} {:>9} {:>6}\n", "op", width, "calls", "total ms", "share",
               "us/call", "GB/s");
    for (const OpProfile& r : rows) {
      if (r.single_token != single) continue;
      // Weight bytes over time: the rate a matmul streamed its weight at (as stored; a
      // backend that repacks may stream a little more or less).
      const std::string rate = r.weight_bytes && single ? fmt::format("{:.1f}", r.weight_bytes / r.seconds / 1e9) : "";
      fmt::print(stderr, "  {:<{}} {:>6} {:>9.1f} {:>5.1f}% {:>9.1f} {:>6}\n", r.name, width, r.calls, r.seconds * 1e3,
                 100 * r.seconds / total, r.seconds * 1e6 / double(r.calls), rate);
    }
    fmt::print(stderr, "  {:<{}} {:>6} {:>9.1f}\n", "total", width, "", total * 1e3);
  }
}

}  // namespace upg::cli
