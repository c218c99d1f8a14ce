// upg batch: offline inference over a JSON Lines file through the batching engine. Each
// line is an OpenAI request body with an id (server/batch-file.h); lines go to the engine
// a window at a time, so many sequences share each step.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "compress/progress.h"
#include "server/batch-file.h"
#include "server/completion.h"
#include "server/engine-loop.h"
#include "server/metrics.h"
#include "upg/core/error.h"
#include "upg/engine/engine.h"

namespace upg::cli {

namespace {

struct BatchArgs {
  ModelArgs model;
  EngineArgs engine;
  GrammarArgs grammar;  // every line's, unless the line chooses its own output format
  std::string input, output;
  int window = 0;
  bool quiet = false;
};

// "[#####      ] 120/400 lines  812 tok/s  ETA 1m05s" on a terminal (redrawn), a plain
// line every few seconds otherwise.
class BatchProgress {
 public:
  BatchProgress(int64_t total, bool quiet)
      : total_(total), quiet_(quiet), tty_(isatty(fileno(stderr)) != 0), start_(Clock::now()), last_(start_) {}
  void update(int64_t done, int64_t tokens, bool final = false) {
    if (quiet_) return;
    const auto now = Clock::now();
    if (!final && !tty_ && now - last_ < std::chrono::seconds(5)) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    const double rate = s > 0 ? double(tokens) / s : 0;
    const double eta = done > 0 ? s * double(total_ - done) / double(done) : 0;
    const std::string line =
        fmt::format("{} {}/{} lines  {:.0f} tok/s  {}", compress::Progress::bar(int(done), int(total_), 30), done,
                    total_, rate, final ? fmt::format("{:.1f} s", s) : fmt::format("ETA {:.0f} s", eta));
    fmt::print(stderr, fmt::runtime(tty_ ? "\r{}\x1b[K" : "{}\n"), line);
    if (tty_ && final) fmt::print(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  int64_t total_;
  bool quiet_, tty_;
  Clock::time_point start_, last_;
};

void run_batch(BatchArgs& a) {
  // The output is read (and an unfinished last line cut) before minutes of loading.
  const server::BatchDone done = server::resume_batch_output(a.output);
  std::ifstream in(a.input, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open the input", a.input));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  if (in.bad()) throw Error(fmt::format("{}: read failed", a.input));
  int64_t total = 0;
  for (const std::string& l : lines) total += l.find_first_not_of(" \t\r") != std::string::npos;

  const std::optional<GrammarSpec> grammar = finish_grammar_args(a.grammar);
  // The flag each grammar kind comes from, for the lines' error records.
  const char* grammar_flag = !a.grammar.grammar_file.empty() ? "--grammar-file"
                             : !a.grammar.json_schema_file.empty() ? "--json-schema"
                                                                     : "--json";

  auto model = load_model(a.model);
  auto draft = load_draft_model(a.model, a.engine);
  const EngineOptions eo = finish_engine_args(a.engine, draft.get());
  Engine engine(*model, eo);
  // A bad or unsupported grammar stops the run here, not once per line; and the lines
  // then find it compiled.
  if (grammar) engine.prepare_grammar(*grammar);
  server::EngineLoop loop(engine);
  server::Metrics metrics;
  const server::CompletionContext ctx{model->tokenizer(), loop, metrics,
                                      std::filesystem::path(a.model.path).filename().string(),
                                      model->context_length()};
  server::RequestLimits limits;
  limits.context_length = model->context_length();
  limits.vocab_size = model->config().vocab_size;
  limits.max_n = 16;
  server::BatchWriter out(a.output);

  // A window of requests in the engine at once: enough to fill its sequences twice over,
  // so a finished one's place is taken while the oldest is still being written.
  const size_t window = size_t(a.window > 0 ? a.window : 2 * eo.limits.max_running);
  struct InFlight {
    nlohmann::json id;
    std::unique_ptr<server::Completion> completion;
  };
  std::deque<InFlight> flight;
  int64_t finished = 0, skipped = 0, failed = 0, tokens = 0, serial = 0;
  BatchProgress progress(total, a.quiet);
  auto finish_oldest = [&] {
    InFlight f = std::move(flight.front());
    flight.pop_front();
    const nlohmann::json response = f.completion->collect();
    tokens += response["usage"]["completion_tokens"].get<int64_t>();
    out.write(server::result_record(f.id, response));
    progress.update(++finished + skipped, tokens);
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t line_no = int64_t(i) + 1;
    if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json id;
    try {
      server::BatchLine bl = server::parse_batch_line(lines[i], limits);
      if (done.ids.count(bl.key)) {
        ++skipped;
        continue;
      }
      id = bl.id;
      // A line's own response_format (even "text"), grammar, json_schema or tools wins.
      if (grammar && bl.request.grammar_field.empty() && !bl.request.tools.active()) {
        bl.request.grammar = grammar;
        bl.request.grammar_field = grammar_flag;
      }
      flight.push_back({bl.id, std::make_unique<server::Completion>(ctx, std::move(bl.request),
                                                                     std::chrono::steady_clock::now(), ++serial)});
    } catch (const server::ApiError& e) {
      const auto* le = dynamic_cast<const server::BatchLineError*>(&e);
      if (le) id = le->id;
      if ((id.is_null() && done.lines.count(line_no)) || (!id.is_null() && done.ids.count(server::batch_key(id)))) {
        ++skipped;
        continue;
      }
      out.write(server::error_record(id, line_no, e));
      ++failed;
      progress.update(++finished + skipped, tokens);
      continue;
    }
    while (flight.size() >= window) finish_oldest();
  }
  while (!flight.empty()) finish_oldest();
  progress.update(finished + skipped, tokens, true);
  fmt::print(stderr, "upg: batch: {} lines: {} done now, {} already in {}, {} failed; {} tokens generated\n", total,
             finished - failed, skipped, a.output, failed, tokens);
  // The exit status says whether any line failed (main prints this and exits 1).
  if (failed > 0)
    throw Error(fmt::format("{} of {} lines failed; their error records are in {}", failed, total, a.output));
}

}  // namespace

void add_batch_command(CLI::App& app) {
  auto args = std::make_shared<BatchArgs>();
  CLI::App* cmd = app.add_subcommand("batch", "Run many requests from a JSON Lines file through the batching engine");
  cmd->footer(
      "Each input line is an OpenAI request body with an \"id\": \"messages\" for a chat completion\n"
      "(the model's chat template applied), \"prompt\" for a completion, and optional fields with\n"
      "OpenAI's names (max_tokens, temperature, top_p, seed, stop, n, ...). Each output line has the\n"
      "id, the text, finish_reason, prompt_tokens and completion_tokens, or an error naming the input\n"
      "line. Lines are written whole; a rerun with the same output file skips the ids it holds.\n"
      "--grammar-file, --json-schema or --json constrain every line's output, except a line that chooses\n"
      "its own (response_format, even {\"type\": \"text\"}; grammar; json_schema; tools).\n"
      "Exit status 1 when any line failed.\n"
      "Example:\n"
      "  echo '{\"id\": 1, \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 16}' > in.jsonl\n"
      "  upg batch models/SmolLM2-135M-Instruct.Q4_1.gguf in.jsonl -o out.jsonl");
  add_model_options(*cmd, args->model);
  BatchArgs& a = *args;
  cmd->add_option("input", a.input, "Input JSON Lines file")->required();
  cmd->add_option("-o,--output", a.output, "Output JSON Lines file (appended to; its ids are skipped)")->required();
  // As for a server: a KV pool many requests share, 1 GiB unless --kv-memory says otherwise.
  a.model.kv_memory_mib = 1024;
  add_engine_options(*cmd, a.engine, a.model);
  add_grammar_options(*cmd, a.grammar);
  cmd->add_option("--window", a.window, "Requests handed to the engine at once (default: twice --max-seqs)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_flag("-q,--quiet", a.quiet, "No progress on stderr");
  cmd->callback([args] { run_batch(*args); });
}

}  // namespace upg::cli
