// upg tokenize / upg info: look inside a model without running it.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg::cli {

void add_tokenize_command(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string text;
    bool show_pieces = false;
    bool no_special = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  add_model_options(*cmd, a->model, false);
  cmd->add_option("text", a->text, "Text to tokenize")->required();
  cmd->add_flag("--pieces", a->show_pieces, "Also print each token's text");
  cmd->add_flag("--no-special", a->no_special, "Treat special-token text like <|im_start|> as plain text");
  cmd->callback([a] {
    ModelSource src = load_model_source(a->model.path, inspect_only());
    if (!src.tokenizer) throw Error(fmt::format("{}: the model has no tokenizer", a->model.path));
    Tokenizer tok(*src.tokenizer);
    auto ids = tok.encode(a->text, false, !a->no_special);
    if (!a->show_pieces) {
      fmt::print("{}\n", fmt::join(ids, " "));
      return;
    }
    for (int32_t id : ids) fmt::print("{:>6} {:?}\n", id, tok.token_bytes(id));
  });
}

void add_info_command(CLI::App& app) {
  auto a = std::make_shared<ModelArgs>();
  auto list = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "Print a model's architecture, sizes and tensors");
  add_model_options(*cmd, *a, false);
  cmd->add_flag("--tensors", *list, "Also list every tensor: name, dtype as stored in the file, shape");
  cmd->callback([a, list] {
    ModelSource src = load_model_source(a->path, inspect_only());
    for (const std::string& w : src.warnings) fmt::print(stderr, "upg: warning: {}\n", w);
    const ModelConfig& c = src.config;
    fmt::print("file:          {} ({}, {:.1f} MiB)\n", src.path, src.format, double(src.file_bytes) / (1 << 20));
    fmt::print("architecture:  {}\n", c.architecture);
    fmt::print("layers:        {}\nhidden:        {}\nintermediate:  {}\n", c.num_layers, c.hidden_size,
               c.intermediate_size);
    fmt::print("heads:         {} (kv {}, head_dim {})\n", c.num_heads, c.num_kv_heads, c.head_dim);
    fmt::print("vocab:         {}\ncontext:       {}\nrope:          theta {}, scaling {}\n", c.vocab_size,
               c.max_position_embeddings, c.rope_theta, c.rope_scaling.type);
    fmt::print("tied embed:    {}\n", c.tie_word_embeddings ? "yes" : "no");
    int64_t params = 0;
    for (auto& [name, t] : src.weights.all()) params += t.numel();
    fmt::print("tensors:       {} ({:.1f} M parameters, {:.1f} MiB as stored)\n", src.weights.all().size(),
               double(params) / 1e6, double(src.weights.total_bytes()) / (1 << 20));
    if (src.tokenizer) fmt::print("tokenizer:     {} tokens, {} merges\n", src.tokenizer->vocab.size(),
                                  src.tokenizer->merges.size());
    for (auto& [k, v] : src.info) fmt::print("{:<14} {}\n", k + ":", v);
    if (!*list) return;
    for (auto& [name, t] : src.weights.all())
      fmt::print("  {:<56} {:<5} [{}]\n", name, dtype_name(t.dtype), fmt::join(t.shape, ", "));
  });
}

}  // namespace upg::cli
