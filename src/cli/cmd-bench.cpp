// upg bench: prompt and decode speed of a model, measured as llama.cpp's llama-bench
// measures it (pp<N>, tg<N>), so the two can be run side by side on the same GGUF file
// (bench/peer/).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "upg/kernels/backend.h"
#include "upg/core/error.h"

namespace upg::cli {

namespace {

// "native" when GGUF blocks run as stored (the integer kernels), else the float type.
std::string dtype_label(const ModelArgs& m) { return m.dtype.empty() ? "native" : m.dtype; }

struct BenchArgs {
  ModelArgs model;
  int n_prompt = 128;
  int n_gen = 128;
  int reps = 3;
  int parallel = 1;  // sequences side by side (llama-batched-bench's npl)
  int depth = 0;     // tokens in each sequence's cache before every test (llama-bench's -d)
  bool json = false;
};

struct TestResult {
  std::string name;  // "pp128", "tg128"
  int n_prompt = 0;
  int n_gen = 0;
  std::vector<double> samples_ts;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}

// Sample standard deviation, as llama-bench reports it (0 for one sample).
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1));
}

// Fixed, varied token ids inside the vocabulary (bench/e2e-bench.cpp's): the speed of a
// forward pass does not depend on which ids they are, only on how many.
int32_t synthetic_token(int i, int vocab) { return int32_t((100 + int64_t(i) * 7919) % std::max(vocab, 1)); }

// Terminal columns of UTF-8 text without wide characters: its code points, as fmt
// counts them when padding.
size_t columns(const std::string& s) {
  return size_t(std::count_if(s.begin(), s.end(), [](char c) { return (uint8_t(c) & 0xC0) != 0x80; }));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One prompt of n tokens from position `depth` for each of `seqs` sequences, all in one
// batch, logits for each one's last token only: llama-bench's pp test
// (llama-batched-bench's with seqs > 1). Positions 0 .. depth - 1 hold what fill_depth
// put there (nothing at depth 0: a fresh cache), which the prompt attends to.
double run_prompt(Model& model, int n, int seqs, int depth) {
  const int vocab = model.config().vocab_size;
  Batch b;
  for (int s = 0; s < seqs; ++s)
    for (int i = 0; i < n; ++i) b.add(synthetic_token(i + s, vocab), depth + i, s, i + 1 == n);
  const auto t0 = std::chrono::steady_clock::now();
  model.decode(b);
  return seconds_since(t0);
}

// Positions 0 .. depth - 1 of every sequence, untimed: the context each test then runs
// after (llama-bench's -d, which also fills it before its tests).
void fill_depth(Model& model, int depth, int seqs) {
  if (depth > 0) run_prompt(model, depth, seqs, 0);
}

// n steps from position `depth`, each one token for each of `seqs` sequences fed that
// sequence's greedy pick of the step before: llama-bench's tg test, which also starts
// after its depth (an empty context by default), so both attend over the same positions
// (llama-batched-bench's tg with seqs > 1, which starts after its prompts instead).
double run_gen(Model& model, int n, int seqs, int depth) {
  const int vocab = model.config().vocab_size;
  Batch b;
  std::vector<int32_t> tokens(static_cast<size_t>(seqs));
  for (int s = 0; s < seqs; ++s) tokens[size_t(s)] = synthetic_token(s, vocab);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    b.clear();
    for (int s = 0; s < seqs; ++s) b.add(tokens[size_t(s)], depth + i, s, true);
    // The pick is made where the logits are (a GPU sends back ids, not logits).
    std::fill(b.want_logits.begin(), b.want_logits.end(), Batch::kGreedy);
    model.decode(b);
    const std::span<const int32_t> picks = model.greedy();
    std::copy(picks.begin(), picks.end(), tokens.begin());
  }
  return seconds_since(t0);
}

void print_table(const BenchArgs& a, Model& model, const std::vector<TestResult>& tests, double load_s) {
  int64_t params = 0;
  for (auto& [name, t] : model.source().weights.all()) params += t.numel();
  // A UPG file's compressed weights count as their dense shapes, as llama-bench counts
  // a GGUF file's quantized ones.
  for (auto& [name, m] : model.source().compressed) params += m.rows * m.cols;
  const std::string file = std::filesystem::path(a.model.path).filename().string();
  const std::string size = fmt::format("{:.2f} MiB", double(model.source().file_bytes) / (1 << 20));
  const std::string nparams = fmt::format("{:.2f} M", double(params) / 1e6);
  const std::string backend = model.backend().name();
  std::vector<std::string> speeds;
  for (const TestResult& t : tests)
    speeds.push_back(fmt::format("{:.2f} ± {:.2f}", mean(t.samples_ts), stddev(t.samples_ts)));
  // Columns as wide as their longest cell, as llama-bench's markdown table (fmt counts
  // '±' as one column).
  const std::string threads = fmt::format("{}", model.backend().n_threads());
  std::vector<std::vector<std::string>> rows = {{"model", "size", "params", "backend", "threads", "test", "t/s"}};
  for (size_t i = 0; i < tests.size(); ++i)
    rows.push_back({file, size, nparams, backend, threads, tests[i].name, speeds[i]});
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], columns(r[c]));
  const std::vector<bool> right = {false, true, true, false, true, true, true};
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = "|";
    for (size_t c = 0; c < width.size(); ++c)
      line += right[c] ? fmt::format(" {:>{}} |", rows[i][c], width[c]) : fmt::format(" {:<{}} |", rows[i][c], width[c]);
    fmt::print("{}\n", line);
    if (i > 0) continue;
    line = "|";
    for (size_t c = 0; c < width.size(); ++c)
      line += " " + std::string(width[c] - (right[c] ? 1 : 0), '-') + (right[c] ? ":" : "") + " |";
    fmt::print("{}\n", line);
  }
  fmt::print("\nload {:.3f} s | dtype {} | peak memory {:.0f} MiB\n", load_s, dtype_label(a.model), peak_rss_mib());
}

// A JSON string literal: quotes, backslashes and control characters escaped, other
// bytes (UTF-8) as they are.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += {'\\', c};
    else if (uint8_t(c) < 0x20)
      out += fmt::format("\\u{:04x}", int(c));
    else
      out += c;
  }
  return out + '"';
}

// One JSON object per test and line; the field names follow llama-bench's JSON where
// there is one (avg_ts, stddev_ts, samples_ts, n_prompt, n_gen).
void print_json(const BenchArgs& a, Model& model, const std::vector<TestResult>& tests, double load_s) {
  const double rss = peak_rss_mib();
  for (const TestResult& t : tests) {
    std::vector<std::string> samples;
    for (double s : t.samples_ts) samples.push_back(fmt::format("{:.3f}", s));
    fmt::print(
        "{{\"model\": {}, \"file_bytes\": {}, \"backend\": {}, \"dtype\": {}, \"load_s\": {:.4f}, "
        "\"test\": {}, \"n_prompt\": {}, \"n_gen\": {}, \"n_depth\": {}, \"n_parallel\": {}, \"threads\": {}, \"avg_ts\": {:.3f}, "
        "\"stddev_ts\": {:.3f}, \"samples_ts\": [{}], \"peak_rss_mib\": {:.1f}}}\n",
        json_string(a.model.path), model.source().file_bytes, json_string(model.backend().name()),
        json_string(dtype_label(a.model)), load_s, json_string(t.name), t.n_prompt,
        t.n_gen, a.depth, a.parallel, model.backend().n_threads(), mean(t.samples_ts), stddev(t.samples_ts), fmt::join(samples, ", "),
        rss);
  }
}

void run(BenchArgs& a) {
  if (a.n_prompt == 0 && a.n_gen == 0) throw Error("-p/--n-prompt and -n/--n-gen are both 0: nothing to measure");
  // Each test starts after the depth, so the depth and the longer test bound the context.
  a.model.ctx = a.depth + std::max(a.n_prompt, a.n_gen);
  a.model.max_sequences = a.parallel;
  double load_s = 0;
  std::unique_ptr<Model> model;
  try {
    model = load_model(a.model, &load_s);
  } catch (const ParamError& e) {
    // The context is set here from -p and -n, so those are the flags to name, not -c.
    if (e.param() != "context_length") throw;
    throw Error(fmt::format("-p/--n-prompt, -n/--n-gen, -d/--n-depth: the depth and the longer test need a "
                            "context of {} tokens, and {}",
                            a.model.ctx, e.problem()));
  }
  Model& m = *model;
  std::vector<TestResult> tests;
  // As llama-bench: every repetition of one test, then of the next, each test after one
  // untimed warm-up (the whole prompt; one decode step), which pages in the weights and
  // sizes the scratch buffers.
  // With --parallel N, tok/s counts every sequence's tokens (aggregate).
  // With -d D, every test after the same D tokens of context, named as llama-bench
  // names it ("tg128 @ d4096").
  const int n = a.parallel, d = a.depth;
  const std::string x = (n > 1 ? fmt::format(" x{}", n) : "") + (d > 0 ? fmt::format(" @ d{}", d) : "");
  fill_depth(m, d, n);
  if (a.n_prompt > 0) {
    TestResult t{fmt::format("pp{}{}", a.n_prompt, x), a.n_prompt, 0, {}};
    run_prompt(m, a.n_prompt, n, d);
    for (int r = 0; r < a.reps; ++r) t.samples_ts.push_back(double(n) * a.n_prompt / run_prompt(m, a.n_prompt, n, d));
    tests.push_back(std::move(t));
  }
  if (a.n_gen > 0) {
    TestResult t{fmt::format("tg{}{}", a.n_gen, x), 0, a.n_gen, {}};
    run_gen(m, 1, n, d);
    for (int r = 0; r < a.reps; ++r) t.samples_ts.push_back(double(n) * a.n_gen / run_gen(m, a.n_gen, n, d));
    tests.push_back(std::move(t));
  }
  if (a.json)
    print_json(a, m, tests, load_s);
  else
    print_table(a, m, tests, load_s);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt and decode speed (tok/s), as llama.cpp's llama-bench");
  cmd->footer(
      "Examples:\n"
      "  upg bench models/SmolLM2-135M-Instruct.Q4_1.gguf -t 2\n"
      "  upg bench model.gguf -p 512 -n 0 -r 5 --json\n"
      "  upg bench model.gguf -p 0 -n 128 -d 4096 --device cuda   (decode after 4096 tokens of context)\n"
      "pp<N>: one batch of N synthetic tokens from an empty cache. tg<N>: N single-token steps from an\n"
      "empty cache, each fed the greedy pick of the last. With -d D both start after D tokens of context\n"
      "(filled once, untimed; the tests are named \"pp<N> @ d<D>\"). Each test runs once untimed first,\n"
      "then -r times; the table shows the mean and standard deviation of tok/s. The model loads once.");
  add_model_options(*cmd, args->model, false);
  cmd->add_option("-p,--n-prompt", args->n_prompt, "Prompt tokens of the pp test (0: no pp test)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", args->n_gen, "Generated tokens of the tg test (0: no tg test)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", args->reps, "Timed runs of each test")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--parallel", args->parallel,
                  "Sequences run side by side, as llama-batched-bench's -npl: pp prefills a prompt for each in "
                  "one batch, tg steps them together; tok/s counts every sequence's tokens")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("-d,--n-depth", args->depth,
                  "Tokens of context already in each sequence's cache when every test starts, as llama-bench's "
                  "-d: the speed of a long conversation's prompt and decode steps")
      ->check(CLI::Range(0, std::numeric_limits<int>::max() / 2))
      ->capture_default_str();
  add_threads_option(*cmd, args->model.threads, "Threads for the forward pass (default: every core)");
  add_dtype_option(*cmd, args->model);
  add_cache_type_option(*cmd, args->model);
  add_device_option(*cmd, args->model);
  add_tensor_parallel_option(*cmd, args->model);
  cmd->add_flag("--json", args->json,
                "One JSON object per test and line (model, file_bytes, load_s, test, n_prompt, n_gen, threads, "
                "avg_ts, stddev_ts, samples_ts, peak_rss_mib, ...) instead of the table");
  cmd->callback([args] { run(*args); });
}

}  // namespace upg::cli
