// UPG_Engine: many sequences at once through the engine (scheduler, paged KV cache, one
// batch per step), on the default model's GGUF: n_seq requests of a 128-token prompt
// (distinct, so prefix sharing does not help) and 128 greedy tokens each, all submitted
// at once, run until idle. gen_tok_s is llama-batched-bench's S_TG analogue over the
// whole run (generated tokens / wall time, prefill included); all_tok_s counts prompt
// tokens too (its S).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

#include "core/test-paths.h"
#include "upg/engine/engine.h"
#include "upg/model/model.h"

namespace {

void BM_Engine(benchmark::State& state) {
  const std::string path = upg::test::default_model_path();
  if (!std::ifstream(path).good()) {
    state.SkipWithError("default model missing: run scripts/fetch-model.sh");
    return;
  }
  const bool smoke = std::getenv("UPG_BENCH_SMOKE") != nullptr;
  const int n_seq = smoke ? std::min<int>(2, int(state.range(0))) : int(state.range(0));
  const int n_prompt = smoke ? 16 : 128, n_gen = smoke ? 4 : 128;
  upg::ModelOptions o;
  o.context_length = 512;
  o.max_sequences = n_seq;
  o.n_threads = int(state.range(1));
  auto model = upg::Model::from_file(path, o);
  double seconds = 0;
  for (auto _ : state) {
    upg::Engine engine(*model, {{512, 64}, false});
    for (int s = 0; s < n_seq; ++s) {
      upg::Request r;
      for (int i = 0; i < n_prompt; ++i) r.prompt.push_back(int32_t(100 + (s * 104729 + i * 7919) % 40000));
      r.sampling.temperature = 0;
      r.max_new_tokens = n_gen;
      r.ignore_eos = true;  // every sequence generates n_gen tokens, as llama-batched-bench's do
      engine.submit(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    while (!engine.idle()) engine.step();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double iters = double(state.iterations());
  state.counters["gen_tok_s"] = double(n_seq) * n_gen * iters / seconds;
  state.counters["all_tok_s"] = double(n_seq) * (n_prompt + n_gen) * iters / seconds;
  state.SetLabel(model->backend().name());
}

}  // namespace

BENCHMARK(BM_Engine)->Name("UPG_Engine/gguf_q4_1")->ArgsProduct({{1, 8, 32}, {2}})->Unit(benchmark::kMillisecond)
    ->UseRealTime()->Iterations(1);
