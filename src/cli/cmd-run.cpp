// upg run: one prompt in, streamed text out, stats on stderr.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "upg/core/file-text.h"
#include "upg/core/error.h"

namespace upg::cli {

namespace {

struct RunArgs {
  ModelArgs model;
  GenerationArgs gen;
  EngineArgs engine;
  std::string prompt = "What is the capital of France? Answer in one sentence.";
  std::string prompt_file;
  std::string system;
  bool raw = false;
};


void run(RunArgs& a) {
  Request req = finish_generation_args(a.gen);
  // No context holds 16 MiB of text; the cap stops an endless file (a device, a pipe) early.
  if (!a.prompt_file.empty()) a.prompt = read_file_text(a.prompt_file, "the prompt file", size_t(16) << 20);
  double load_s = 0;
  auto model = load_model(a.model, &load_s);
  const Tokenizer& tok = model->tokenizer();
  std::string text = a.prompt;
  if (!a.raw) {
    std::vector<ChatMessage> msgs;
    if (!a.system.empty()) msgs.push_back({"system", a.system});
    msgs.push_back({"user", a.prompt});
    text = tok.apply_chat_template(msgs, true);
    if (a.gen.verbose) fmt::print(stderr, "upg: chat template: {}\n", tok.chat_template_description());
  }
  req.prompt = tok.encode(text, tok.add_bos(), true);
  if (a.gen.verbose) fmt::print(stderr, "upg: sampler: {}\n", Sampler(req.sampling).describe());
  const std::unique_ptr<Model> draft = load_draft_model(a.model, a.engine);
  Engine engine(*model, finish_engine_args(a.engine, draft.get()));
  GenerateStats st = generate(engine, std::move(req), [](std::string_view piece) {
    write_stdout(piece);
    return true;
  });
  write_stdout("\n");
  print_stats(st, load_s);
  print_profile(*model);
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt, streaming tokens to stdout");
  cmd->footer(
      "Examples:\n"
      "  upg run models/SmolLM2-135M-Instruct.Q4_1.gguf -p \"Write a haiku about the sea\"\n"
      "  upg run model.gguf --raw -p \"def fibonacci(n):\" -n 64 --temp 0\n"
      "The prompt goes through the model's chat template unless --raw is given.\n"
      "Stats (load time, prompt and decode tok/s, peak memory) go to stderr.");
  add_model_options(*cmd, args->model);
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text")->capture_default_str();
  cmd->add_option("-f,--file", args->prompt_file, "Read the prompt from a file");
  cmd->add_option("--system-prompt,--sys", args->system, "System message for the chat template");
  cmd->add_flag("--raw", args->raw, "Send the prompt as is, without the chat template");
  add_generation_options(*cmd, args->gen);
  add_engine_options(*cmd, args->engine, args->model);
  cmd->callback([args] { run(*args); });
}

}  // namespace upg::cli
