// upg: run, chat with, inspect and (later) compress language models.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "upg/core/error.h"
#include "upg/core/version.h"

int main(int argc, char** argv) {
  CLI::App app{"UPG: an inference engine for compressed language models.\n"
               "Runs Llama-family models (SmolLM2, Llama, Mistral, Qwen2, Phi-3/Phi-4) from GGUF,\n"
               "safetensors or a Hugging Face directory."};
  app.require_subcommand(1);
  app.set_version_flag("--version", upg::kVersion);
  upg::cli::add_run_command(app);
  upg::cli::add_chat_command(app);
  upg::cli::add_tokenize_command(app);
  upg::cli::add_info_command(app);
  upg::cli::add_upg_inspect_commands(app);
  upg::cli::add_perplexity_command(app);
  upg::cli::add_compress_command(app);
  upg::cli::add_synth_command(app);
  upg::cli::add_bench_command(app);
  upg::cli::add_serve_command(app);
  upg::cli::add_batch_command(app);
  upg::cli::add_grammar_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const upg::ParamError& e) {
    fmt::print(stderr, "upg: error: {}\n", upg::cli::describe_param_error(e));
    return 1;
  } catch (const upg::Error& e) {
    fmt::print(stderr, "upg: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "upg: error: {}\n", e.what());
    return 1;
  }
  // Output buffered by fmt::print and the like is only written here; losing it (a full
  // disk, a closed stdout) is a failure like any other.
  return upg::cli::finish_stdout() ? 0 : 1;
}
