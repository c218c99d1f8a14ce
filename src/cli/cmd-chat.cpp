// upg chat: an interactive conversation; the KV cache keeps earlier turns, so each turn
// only prefills the new message.
#include <cstdio>
#include <iostream>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "upg/core/error.h"

namespace upg::cli {

namespace {

struct ChatArgs {
  ModelArgs model;
  GenerationArgs gen;
  EngineArgs engine;
  std::string system;
};

void chat(ChatArgs& a) {
  const Request params = finish_generation_args(a.gen);
  double load_s = 0;
  auto model = load_model(a.model, &load_s);
  const Tokenizer& tok = model->tokenizer();
  // One engine for the whole session: each turn re-sends the conversation, and prefix
  // sharing finds the earlier turns' KV blocks, so only the new turn is prefilled.
  const std::unique_ptr<Model> draft = load_draft_model(a.model, a.engine);
  Engine engine(*model, finish_engine_args(a.engine, draft.get()));
  std::vector<ChatMessage> msgs;
  if (!a.system.empty()) msgs.push_back({"system", a.system});
  if (a.gen.verbose) fmt::print(stderr, "upg: chat template: {}\n", tok.chat_template_description());
  fmt::print(stderr, "upg: chat ready; type a message, /reset to start over, Ctrl-D to quit.\n");
  // Piped input is not echoed by a terminal: echo it after the prompt so that the
  // transcript reads "> message", then the reply on its own line.
  const bool interactive = isatty(fileno(stdin)) != 0;
  std::string line;
  while (true) {
    fmt::print(stderr, "> ");
    if (!std::getline(std::cin, line)) {
      fmt::print(stderr, "\n");  // end the prompt's line at end of input
      break;
    }
    if (!interactive) fmt::print(stderr, "{}\n", line);
    if (line.empty()) continue;
    if (line == "/reset") {
      msgs.resize(a.system.empty() ? 0 : 1);
      continue;
    }
    msgs.push_back({"user", line});
    std::string reply;
    GenerateStats st;
    try {
      Request req = params;
      req.prompt = tok.encode(tok.apply_chat_template(msgs, true), tok.add_bos(), true);
      st = generate(engine, std::move(req), [&](std::string_view piece) {
        reply += piece;
        write_stdout(piece);
        return true;
      });
    } catch (const OutputError&) {
      throw;  // nobody can read the session any more
    } catch (const Error& e) {
      // A full context ends the turn, not the session: the user can /reset.
      fmt::print(stderr, "\nupg: {}\n", e.what());
      msgs.pop_back();
      continue;
    }
    write_stdout("\n");
    msgs.push_back({"assistant", reply});
    if (a.gen.verbose) print_stats(st, load_s);
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Talk with a model interactively (reads stdin line by line)");
  add_model_options(*cmd, args->model);
  cmd->add_option("--system-prompt,--sys", args->system, "System message");
  add_generation_options(*cmd, args->gen);
  add_engine_options(*cmd, args->engine, args->model);
  cmd->callback([args] { chat(*args); });
}

}  // namespace upg::cli
