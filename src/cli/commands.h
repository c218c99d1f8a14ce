#pragma once
// Each subcommand registers itself on the app; main() only parses and reports errors.
namespace CLI {
class App;
}

namespace upg::cli {

void add_run_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_upg_inspect_commands(CLI::App& app);  // inspect, decompress, export
void add_perplexity_command(CLI::App& app);
void add_compress_command(CLI::App& app);
void add_synth_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_batch_command(CLI::App& app);
void add_grammar_command(CLI::App& app);  // grammar check, grammar bench

}  // namespace upg::cli
