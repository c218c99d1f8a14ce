// UPG_Loading: Model::from_file until it returns a model ready to decode, for the default
// GGUF, the same model compressed to UPG (magnitude, 50% and 2:4, written once per run into
// a temp file; the smoke run loads bench-models.h's instead), a small synthetic UPG model,
// and a Phi-4-shaped file when UPG_BENCH_PHI4 names one (`upg synth` writes it; too large
// to make here). `_first_touch` evicts the file from the page cache before each load
// (posix_fadvise DONTNEED, which needs no root and drops clean unmapped pages), so the
// time includes reading it from disk; `_warm` loads it from the page cache.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "bench-models.h"
#include "compress/compressor.h"
#include "compress/prune.h"
#include "compress/synth.h"
#include "core/test-paths.h"
#include "upg/core/error.h"
#include "upg/model/model.h"

namespace {

namespace fs = std::filesystem;

// Files this run writes, removed when the binary exits.
struct TempFiles {
  fs::path dir = fs::temp_directory_path() / fmt::format("upg-loading-bench-{}", getpid());
  ~TempFiles() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  fs::path make(const std::string& name) {
    fs::create_directories(dir);
    return dir / name;
  }
};

TempFiles& temp() {
  static TempFiles t;
  return t;
}

bool exists(const std::string& p) { return !p.empty() && std::ifstream(p).good(); }

std::string default_gguf() { return upg::test::default_model_path(); }

// The default model compressed with magnitude pruning to `pattern` (50% when
// unstructured), once per run; empty (with the reason in *why) when the model is missing
// or compression failed.
std::string compressed_default(const std::string& pattern, std::string* why) {
  struct Made {
    std::string path, error;
  };
  static std::map<std::string, Made> made;
  auto [it, fresh] = made.try_emplace(pattern);
  Made& m = it->second;
  if (fresh) {
    if (!exists(default_gguf())) {
      m.error = "default model missing: run scripts/fetch-model.sh";
    } else {
      try {
        // The smoke run (UPG_BENCH_SMOKE) loads the files UPG_E2E makes and keeps
        // (bench-models.h: the same pruning, the embedding in int8 too) rather than
        // compressing the model twice more.
        if (std::getenv("UPG_BENCH_SMOKE")) {
          m.path = upg::bench::upg_file(pattern == "2:4" ? upg::bench::Variant::NM24
                                                         : upg::bench::Variant::Unstructured50);
          *why = m.error;
          return m.path;
        }
        upg::compress::CompressOptions o;
        o.source = default_gguf();
        o.output = temp().make(pattern == "2:4" ? "default-2-4.upg" : "default.upg").string();
        o.matrix.pattern = upg::compress::parse_pattern(pattern);
        o.matrix.sparsity = 0.5;
        o.matrix.threads = 2;
        o.prune = upg::compress::PruneMethod::Magnitude;
        o.quiet = true;
        upg::compress::compress_model(o);
        m.path = o.output;
      } catch (const upg::Error& e) {
        m.error = fmt::format("compressing the default model failed: {}", e.what());
      }
    }
  }
  *why = m.error;
  return m.path;
}

// A Llama of hidden 512 and 4 layers (about 25 M parameters): big enough that loading
// validates real MdCSR data, small enough for every CI run.
std::string synth_small(std::string* why) {
  static std::string path, error;
  static bool done = false;
  if (!done) {
    done = true;
    try {
      const fs::path cfg = temp().make("synth-small-config.json");
      std::ofstream(cfg) << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 4,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64,
        "hidden_act": "silu", "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "vocab_size": 8192,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"})";
      upg::compress::SynthOptions o;
      o.config_path = cfg.string();
      o.output = temp().make("synth-small.upg").string();
      o.matrix.pattern = upg::compress::parse_pattern("unstructured");
      o.matrix.sparsity = 0.5;
      o.matrix.threads = 2;
      o.seed = 1;
      o.quiet = true;
      upg::compress::synth_model(o);
      path = o.output;
    } catch (const upg::Error& e) {
      error = fmt::format("upg synth of the small config failed: {}", e.what());
    }
  }
  *why = error;
  return path;
}

void evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

void run_load(benchmark::State& state, const std::string& path, const std::string& why, bool first_touch) {
  if (path.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  upg::ModelOptions o;
  o.n_threads = 2;
  o.context_length = 512;  // the KV cache is not what this measures
  std::unique_ptr<upg::Model> model;
  try {
    model = upg::Model::from_file(path, o);  // warms the page cache for _warm
  } catch (const upg::Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    model.reset();  // unmaps the file, so DONTNEED can drop its pages
    if (first_touch) evict(path);
    state.ResumeTiming();
    model = upg::Model::from_file(path, o);
    benchmark::DoNotOptimize(model.get());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(fs::file_size(path)));
  state.SetLabel(fmt::format("{}, {:.1f} MB", fs::path(path).filename().string(), double(fs::file_size(path)) / 1e6));
}

void register_pair(const std::string& name, std::string (*source)(std::string*)) {
  for (bool first : {true, false})
    benchmark::RegisterBenchmark(
        fmt::format("UPG_Loading/{}_{}", name, first ? "first_touch" : "warm").c_str(),
        [source, first](benchmark::State& s) {
          std::string why;
          const std::string path = source(&why);
          run_load(s, path, why, first);
        })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
}

[[maybe_unused]] const bool registered = [] {
  register_pair("mmap_gguf_default", [](std::string* why) {
    if (exists(default_gguf())) return default_gguf();
    *why = "default model missing: run scripts/fetch-model.sh";
    return std::string();
  });
  register_pair("mmap_upg_default", [](std::string* why) { return compressed_default("unstructured", why); });
  // 2:4 is repacked at load into 16-row groups for decode (kernels/cpu/int8-pack.cpp).
  register_pair("mmap_upg_default_2_4", [](std::string* why) { return compressed_default("2:4", why); });
  register_pair("mmap_upg_synth_small", synth_small);
  if (const char* phi4 = std::getenv("UPG_BENCH_PHI4"); phi4 && *phi4)
    register_pair("mmap_upg_phi4", [](std::string* why) {
      const std::string p = std::getenv("UPG_BENCH_PHI4");
      if (exists(p)) return p;
      *why = "UPG_BENCH_PHI4 names no readable file";
      return std::string();
    });
  return true;
}();

}  // namespace
