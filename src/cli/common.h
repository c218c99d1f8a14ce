#pragma once
// Options and output shared by the upg subcommands.
#include <optional>
#include <string>
#include <string_view>

#include "upg/core/error.h"
#include "upg/engine/generate.h"
#include "upg/model/model.h"

namespace CLI {
class App;
}

namespace upg::cli {

struct ModelArgs {
  std::string path;
  int threads = 0;
  int ctx = 0;
  std::string dtype;  // empty: GGUF block-quantized weights run as stored; else what they are dequantized to
  bool reference_kernels = false;
  bool profile = false;
  std::string cache_type = "f16";
  double kv_memory_mib = 0;  // 0: the whole context for each sequence
  std::string device = "cpu";
  int max_sequences = 1;  // KV cache for this many sequences at once (upg bench --parallel)
  int tensor_parallel = 1;  // --tensor-parallel: ranks (GPUs, or CPU thread groups) the model splits over
};
// --device cpu|cuda, shared by every command that runs a model.
void add_device_option(CLI::App& app, ModelArgs& args);
// --tensor-parallel N, for the engine's commands and bench.
void add_tensor_parallel_option(CLI::App& app, ModelArgs& args);
// --cache-type f16|f32|int8, shared by every command that runs a model.
void add_cache_type_option(CLI::App& app, ModelArgs& args);
// --reference-kernels, shared by every command that runs a model.
void add_reference_kernels_flag(CLI::App& app, ModelArgs& args);
void add_model_options(CLI::App& app, ModelArgs& args, bool with_runtime = true);
// --dtype f32|f16|bf16: the float path for GGUF block-quantized weights.
void add_dtype_option(CLI::App& app, ModelArgs& args);
// -t/--threads in [0, ThreadPool::kMaxThreads], shared by every command that computes.
void add_threads_option(CLI::App& app, int& threads, const std::string& help);
// Load options for reading a model's metadata and tokenizer without running it.
LoadOptions inspect_only();
// Loads the model, printing the load time to stderr.
std::unique_ptr<Model> load_model(const ModelArgs& args, double* load_seconds = nullptr);

// Flags for the commands that run requests through the engine: the scheduler's limits,
// prefix sharing, speculative decoding.
struct EngineArgs {
  EngineOptions options;
  bool no_prefix_cache = false;
  std::string draft;  // --draft MODEL
};
// Also --kv-memory, the KV pool's size, which the model is loaded with.
void add_engine_options(CLI::App& app, EngineArgs& args, ModelArgs& model);
// The --draft model, loaded with the target's runtime flags; null without --draft.
std::unique_ptr<Model> load_draft_model(const ModelArgs& model, const EngineArgs& args);
// The engine's options, with the draft model when there is one.
EngineOptions finish_engine_args(const EngineArgs& args, Model* draft);

// Structured output: --grammar-file, --json-schema, --json (at most one), shared by run,
// chat and batch.
struct GrammarArgs {
  std::string grammar_file, json_schema_file;
  bool json = false;
};
void add_grammar_options(CLI::App& app, GrammarArgs& args);
// The grammar the flags ask for (files read now; compiled when a request is submitted):
// compact JSON, properties in the schema's order, no property the schema does not name.
std::optional<GrammarSpec> finish_grammar_args(const GrammarArgs& args);

struct GenerationArgs {
  Request request;  // its prompt comes from the command's own options
  std::string seed_text;  // kept as text so "-1" (random) reads like llama.cpp
  bool verbose = false;
  GrammarArgs grammar;  // request.grammar
};
void add_generation_options(CLI::App& app, GenerationArgs& args);
// Turns the parsed flags into a request without its prompt (seed, validation); throws
// upg::Error on bad values.
Request finish_generation_args(GenerationArgs& args);

// A library ParamError in the CLI's words: the flag that sets the parameter, and what
// to change ("-n/--n-predict: prompt (9 tokens) plus 100 new tokens exceeds the context
// of 64 tokens (lower -n or raise -c)").
std::string describe_param_error(const ParamError& e);

// Streams generated text: writes and flushes, and throws OutputError when stdout cannot
// take it (a full disk, a closed descriptor), so generation stops and the exit is non-zero.
struct OutputError : Error {
  using Error::Error;
};
void write_stdout(std::string_view text);
// Flushes stdout at exit; false (after printing why) if anything written was lost.
bool finish_stdout();

// "prompt: 31 tokens, 412.3 tok/s | generated: 64 tokens, 71.2 tok/s | ..." on stderr.
void print_stats(const GenerateStats& st, double load_seconds);
// The time per backend op of a model loaded with --profile, as a table on stderr.
void print_profile(const Model& model);
// Peak resident memory of this process in MiB.
double peak_rss_mib();

}  // namespace upg::cli
