// upg perplexity: how well a model predicts a text (docs/QUALITY.md's measure); the
// method is documented in include/upg/engine/perplexity.h.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "upg/core/file-text.h"
#include "upg/core/error.h"
#include "upg/engine/perplexity.h"

namespace upg::cli {

namespace {

struct PerplexityArgs {
  ModelArgs model;
  std::string text_path;
  int ctx = 512;
  int64_t max_tokens = 0;
  bool parse_special = false;
  bool second_half = false;
};


// "[#########...........]  4096/20480 tokens  212.3 tok/s  ppl 14.21" redrawn in place.
void draw_progress(int64_t done, int64_t total, double ppl, double seconds) {
  constexpr int kWidth = 30;
  const int fill = total > 0 ? int(kWidth * done / total) : kWidth;
  fmt::print(stderr, "\r[{}{}] {:>{}}/{} tokens  {:.1f} tok/s  ppl {:.4f}  ", std::string(size_t(fill), '#'),
             std::string(size_t(kWidth - fill), '.'), done, fmt::formatted_size("{}", total), total,
             seconds > 0 ? double(done) / seconds : 0.0, ppl);
}

void run(PerplexityArgs& a) {
  if (a.ctx < 2) throw Error(fmt::format("--ctx: {} is too small (at least 2)", a.ctx));
  if (a.max_tokens < 0) throw Error("--max-tokens: must be 0 (all) or more");
  const std::string text = read_file_text(a.text_path, "the evaluation text");
  // The KV cache only needs one window.
  a.model.ctx = a.ctx;
  auto model = load_model(a.model);
  const Tokenizer& tok = model->tokenizer();
  // Tokenized as the model's tokenizer would for a prompt (BOS when it adds one), with
  // special-token parsing off unless asked: the text is data, not markup; a chat
  // transcript (--parse-special) is the exception, its <|im_start|> markers are tokens.
  std::vector<int32_t> tokens = tok.encode(text, tok.add_bos(), a.parse_special);
  if (a.max_tokens > 0 && int64_t(tokens.size()) > a.max_tokens) tokens.resize(size_t(a.max_tokens));
  fmt::print(stderr, "upg: {}: {} bytes, {} tokens, windows of {}\n", a.text_path, text.size(), tokens.size(), a.ctx);

  const bool tty = isatty(STDERR_FILENO);
  const auto t0 = std::chrono::steady_clock::now();
  auto last_draw = t0 - std::chrono::seconds(1);
  const PerplexityScoring scoring = a.second_half ? PerplexityScoring::SecondHalf : PerplexityScoring::AllButFirst;
  PerplexityResult r = perplexity(*model, tokens, a.ctx, [&](int64_t done, int64_t total, double ppl) {
    const auto now = std::chrono::steady_clock::now();
    // Off a terminal a carriage return does not redraw, so only every 10 s is written.
    if (now - last_draw < (tty ? std::chrono::milliseconds(100) : std::chrono::milliseconds(10000)) && done < total)
      return;
    last_draw = now;
    draw_progress(done, total, ppl, std::chrono::duration<double>(now - t0).count());
    if (!tty) fmt::print(stderr, "\n");
  }, scoring);
  if (tty) fmt::print(stderr, "\n");
  fmt::print("perplexity: {:.4f} (mean NLL {:.5f} nats over {} scored tokens; {} windows of up to {} tokens)\n",
             r.ppl, r.mean_nll, r.n_scored, r.n_windows, a.ctx);
  fmt::print("speed: {} tokens in {:.2f} s, {:.1f} tok/s on {}\n", r.n_tokens, r.seconds,
             r.seconds > 0 ? double(r.n_tokens) / r.seconds : 0.0, model->backend().name());
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Measure a model's perplexity on a text file");
  cmd->footer(
      "Examples:\n"
      "  upg perplexity models/SmolLM2-135M-Instruct.Q4_1.gguf --text tests/fixtures/eval/kjv-slice.txt\n"
      "  upg perplexity model.upg --text eval.txt --ctx 256 --max-tokens 4096 -t 2\n"
      "The text is cut into non-overlapping windows of --ctx tokens, each a fresh context; every token\n"
      "of a window but the first is scored (as transformers' loss over the window). Lower is better.");
  add_model_options(*cmd, args->model, false);
  cmd->add_option("--text", args->text_path, "Evaluation text file (UTF-8)")->required();
  cmd->add_option("--ctx", args->ctx, "Window length in tokens")->capture_default_str();
  cmd->add_flag("--score-second-half", args->second_half,
                "Score as llama.cpp's llama-perplexity does: whole windows only, and in each only the tokens "
                "after its first half (for comparing the two tools; not QUALITY.md's measure)");
  cmd->add_flag("--parse-special", args->parse_special,
               "Read special tokens written in the text (<|im_start|>...) as tokens: for chat transcripts");
  cmd->add_option("--max-tokens", args->max_tokens, "Evaluate only the first N tokens of the text (0: all)")
      ->capture_default_str();
  add_threads_option(*cmd, args->model.threads, "Threads for the forward pass (default: every core)");
  add_cache_type_option(*cmd, args->model);
  add_device_option(*cmd, args->model);
  add_reference_kernels_flag(*cmd, args->model);
  add_dtype_option(*cmd, args->model);
  cmd->callback([args] { run(*args); });
}

}  // namespace upg::cli
