// UPG_E2E: prompt and decode speed of the default model, end to end through Model::decode
// (the same path `upg run` takes), reported as counters. Greedy argmax keeps sampling
// cost out of the figure and the token sequence fixed.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include <filesystem>

#include <fmt/format.h>

#include "bench-models.h"
#include "core/test-paths.h"
#include "upg/kernels/backend.h"
#include "upg/core/error.h"
#include "upg/model/model.h"

namespace {

using upg::bench::model_path;
using upg::bench::upg_file;
using upg::bench::Variant;

// dtype: what GGUF block-quantized weights are dequantized to; nullopt runs them as
// stored, through the integer kernels.
void run_e2e(benchmark::State& state, std::optional<upg::DType> dtype, std::string path = "",
             upg::DType kv_type = upg::DType::F16) {
  if (!std::ifstream(model_path()).good()) {
    state.SkipWithError("default model missing: run scripts/fetch-model.sh");
    return;
  }
  if (path.empty()) path = model_path();
  // The ctest smoke run (scripts/bench.sh --smoke) only checks that the path works; 16
  // decode steps and at most 256 prompt tokens keep it short.
  const bool smoke = std::getenv("UPG_BENCH_SMOKE") != nullptr;
  const int n_prompt = smoke ? std::min(256, int(state.range(0))) : int(state.range(0));
  const int n_decode = smoke ? std::min(16, int(state.range(1))) : int(state.range(1));
  upg::ModelOptions o;
  o.context_length = std::max(512, n_prompt + n_decode);
  o.kv_type = kv_type;
  o.n_threads = int(state.range(2));
  o.load.dequant_to = dtype;
  auto model = upg::Model::from_file(path, o);
  std::vector<int32_t> prompt;
  for (int i = 0; i < n_prompt; ++i) prompt.push_back(int32_t(100 + (i * 7919) % 40000));  // fixed, varied ids
  double prompt_s = 0, decode_s = 0;
  for (auto _ : state) {
    upg::Batch b;
    for (int i = 0; i < n_prompt; ++i) b.add(prompt[size_t(i)], i, 0, i + 1 == n_prompt);
    auto t0 = std::chrono::steady_clock::now();
    auto logits = model->decode(b);
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < n_decode; ++i) {
      int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      b.clear();
      b.add(next, n_prompt + i, 0, true);
      logits = model->decode(b);
    }
    auto t2 = std::chrono::steady_clock::now();
    prompt_s += std::chrono::duration<double>(t1 - t0).count();
    decode_s += std::chrono::duration<double>(t2 - t1).count();
  }
  const double iters = double(state.iterations());
  state.counters["prompt_tok_s"] = n_prompt * iters / prompt_s;
  state.counters["decode_tok_s"] = n_decode * iters / decode_s;
  state.SetLabel(model->backend().name());
}

void BM_E2E_DenseF32(benchmark::State& s) { run_e2e(s, upg::DType::F32); }
void BM_E2E_DenseF16(benchmark::State& s) { run_e2e(s, upg::DType::F16); }
void BM_E2E_Gguf(benchmark::State& s) { run_e2e(s, std::nullopt); }
void BM_E2E_Upg(benchmark::State& s, Variant v, upg::DType kv_type = upg::DType::F16) {
  std::string path;
  try {
    if (std::ifstream(model_path()).good()) path = upg_file(v);
  } catch (const upg::Error& e) {
    s.SkipWithError(e.what());
    return;
  }
  run_e2e(s, upg::DType::F16, path, kv_type);
}

}  // namespace

// Args: prompt tokens, decode tokens, threads.
BENCHMARK(BM_E2E_DenseF32)->Name("UPG_E2E/dense_f32")->Args({128, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_E2E_DenseF16)->Name("UPG_E2E/dense_f16")->Args({128, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
// The default model's Q4_1 GGUF as shipped, on the integer kernels.
BENCHMARK(BM_E2E_Gguf)->Name("UPG_E2E/gguf_q4_1")->Args({128, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_E2E_Upg, dense_int8, Variant::DenseInt8)
    ->Name("UPG_E2E/dense_int8")->Args({128, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_E2E_Upg, upg_50, Variant::Unstructured50)
    ->Name("UPG_E2E/upg_50")->Args({128, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_E2E_Upg, upg_2_4, Variant::NM24)
    ->Name("UPG_E2E/upg_2_4")->Args({128, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

// A long context, where attention and the KV cache weigh: 1024 prompt tokens, then 128
// decoded at positions 1024-1151, with the default f16 cache and with the int8 one.
BENCHMARK_CAPTURE(BM_E2E_Upg, upg_2_4_f16, Variant::NM24, upg::DType::F16)
    ->Name("UPG_E2E_Long/upg_2_4/f16")->Args({1024, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_E2E_Upg, upg_2_4_int8, Variant::NM24, upg::DType::I8)
    ->Name("UPG_E2E_Long/upg_2_4/int8")->Args({1024, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_E2E_Upg, dense_int8_f16, Variant::DenseInt8, upg::DType::F16)
    ->Name("UPG_E2E_Long/dense_int8/f16")->Args({1024, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_E2E_Upg, dense_int8_int8, Variant::DenseInt8, upg::DType::I8)
    ->Name("UPG_E2E_Long/dense_int8/int8")->Args({1024, 128, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
