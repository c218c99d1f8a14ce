// UPG_Engine: many sequences at once through the engine (scheduler, paged KV cache, one
// batch per step), on the default model's GGUF: n_seq requests of a 128-token prompt
// (distinct, so prefix sharing does not help) and 128 greedy tokens each, all submitted
// at once, run until idle. gen_tok_s is llama-batched-bench's S_TG analogue over the
// whole run (generated tokens / wall time, prefill included); all_tok_s counts prompt
// tokens too (its S). decode_tok_s counts only the steps after every request has its
// first token (no prompt left: llama-batched-bench's S_TG proper), and int_gops the
// integer multiply-adds of the linear layers in those steps (2 ops each, attention left
// out) against peak_gops: cores x clock x 128 int8 ops per cycle, one 512-bit VNNI dot
// product (64 multiply-adds) a cycle, as Zen 4 and Sapphire Rapids issue them.
//
// UPG_EngineGrammar: the same at 1 and 32 sequences without (0) and with (1) a JSON
// Schema on every request, one that cannot end within 128 tokens (an array of at least
// 200 integers), so each request still generates all 128: what the grammar's masks cost
// a decode step.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "core/test-paths.h"
#include "upg/engine/engine.h"
#include "upg/model/model.h"

namespace {

// A JSON Schema no output of 128 tokens completes.
constexpr const char* kLongSchema = R"({"type":"array","items":{"type":"integer"},"minItems":200})";

void run_engine(benchmark::State& state, bool grammar, bool batch_invariant) {
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
  const upg::ModelConfig& c = model->config();
  const double q_dim = double(c.num_heads) * c.head_dim, kv_dim = double(c.num_kv_heads) * c.head_dim,
               hidden = c.hidden_size;
  const double macs_per_token =
      c.num_layers * (hidden * (q_dim + 2 * kv_dim) + q_dim * hidden + 3 * hidden * c.intermediate_size) +
      double(c.vocab_size) * hidden;
  double seconds = 0, decode_seconds = 0, decode_tokens = 0;
  for (auto _ : state) {
    upg::EngineOptions eo;
    eo.limits = {512, 64};
    eo.prefix_sharing = false;
    eo.batch_invariant = batch_invariant;
    upg::Engine engine(*model, eo);
    for (int s = 0; s < n_seq; ++s) {
      upg::Request r;
      for (int i = 0; i < n_prompt; ++i) r.prompt.push_back(int32_t(100 + (s * 104729 + i * 7919) % 40000));
      r.sampling.temperature = 0;
      r.max_new_tokens = n_gen;
      r.ignore_eos = true;  // every sequence generates n_gen tokens, as llama-batched-bench's do
      if (grammar) r.grammar = upg::GrammarSpec{upg::GrammarKind::kJsonSchema, kLongSchema};
      engine.submit(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<bool> started(size_t(n_seq), false);
    int n_started = 0;
    bool decoding = false;  // every request has its first token: the steps from here decode only
    auto t_decode = t0;
    while (!engine.idle()) {
      for (const upg::RequestEvent& ev : engine.step()) {
        if (ev.token < 0) continue;
        if (decoding) ++decode_tokens;
        else if (!started[size_t(ev.id)]) started[size_t(ev.id)] = true, ++n_started;
      }
      if (!decoding && n_started == n_seq) {
        decoding = true;
        t_decode = std::chrono::steady_clock::now();
      }
    }
    const auto t1 = std::chrono::steady_clock::now();
    seconds += std::chrono::duration<double>(t1 - t0).count();
    decode_seconds += std::chrono::duration<double>(t1 - t_decode).count();
  }
  const double peak_ops = double(state.range(1)) * benchmark::CPUInfo::Get().cycles_per_second * 128;
  state.counters["decode_tok_s"] = decode_seconds > 0 ? decode_tokens / decode_seconds : 0;
  state.counters["int_gops"] = decode_seconds > 0 ? 2 * macs_per_token * decode_tokens / decode_seconds / 1e9 : 0;
  state.counters["peak_gops"] = peak_ops / 1e9;
  const double iters = double(state.iterations());
  state.counters["gen_tok_s"] = double(n_seq) * n_gen * iters / seconds;
  state.counters["all_tok_s"] = double(n_seq) * (n_prompt + n_gen) * iters / seconds;
  state.SetLabel(model->backend().name());
}

void BM_Engine(benchmark::State& state, bool batch_invariant) { run_engine(state, false, batch_invariant); }
void BM_EngineGrammar(benchmark::State& state) { run_engine(state, state.range(2) != 0, false); }

}  // namespace

BENCHMARK_CAPTURE(BM_Engine, plain, false)->Name("UPG_Engine/gguf_q4_1")->ArgsProduct({{1, 8, 32}, {2}})->Unit(benchmark::kMillisecond)
    ->UseRealTime()->Iterations(1);
BENCHMARK(BM_EngineGrammar)->Name("UPG_EngineGrammar/gguf_q4_1")->ArgsProduct({{1, 32}, {2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
// The same with EngineOptions::batch_invariant: decode tokens stay on the tiles however
// many sequences decode (the price of a request's tokens not depending on its batch).
BENCHMARK_CAPTURE(BM_Engine, invariant, true)->Name("UPG_Engine/gguf_q4_1_batch_invariant")->ArgsProduct({{1, 8, 32}, {2}})
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

namespace {

// UPG_PrefixSharing: 32 requests whose prompts share a 400-token system prefix and end
// in 16 tokens of their own, all submitted at once, 16 generated tokens each, so that
// they are all held at once (arg 1: prefix sharing on, 0: off). kv_blocks_peak is the
// most KV blocks held at the end of a step, ttft_ms_mean / ttft_ms_max the time from
// submission to each first token.
void BM_PrefixSharing(benchmark::State& state) {
  const std::string path = upg::test::default_model_path();
  if (!std::ifstream(path).good()) {
    state.SkipWithError("default model missing: run scripts/fetch-model.sh");
    return;
  }
  const bool smoke = std::getenv("UPG_BENCH_SMOKE") != nullptr;
  const int n_req = smoke ? 4 : 32, n_prefix = smoke ? 48 : 400, n_own = 16;
  upg::ModelOptions o;
  o.context_length = 512;
  o.max_sequences = n_req;
  o.n_threads = 2;
  auto model = upg::Model::from_file(path, o);
  double ttft_sum = 0, ttft_max = 0;
  int peak = 0;
  for (auto _ : state) {
    upg::EngineOptions eo;
    eo.prefix_sharing = state.range(0) != 0;
    upg::Engine engine(*model, eo);
    for (int s = 0; s < n_req; ++s) {
      upg::Request r;
      for (int i = 0; i < n_prefix; ++i) r.prompt.push_back(int32_t(100 + (i * 7919) % 40000));
      for (int i = 0; i < n_own; ++i) r.prompt.push_back(int32_t(100 + (s * 104729 + i * 31) % 40000));
      r.sampling.temperature = 0;
      r.max_new_tokens = smoke ? 2 : 16;
      r.ignore_eos = true;
      engine.submit(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<bool> started(size_t(n_req), false);
    while (!engine.idle()) {
      for (const upg::RequestEvent& ev : engine.step()) {
        if (ev.token < 0 || started[size_t(ev.id)]) continue;
        started[size_t(ev.id)] = true;
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        ttft_sum += ms;
        ttft_max = std::max(ttft_max, ms);
      }
      peak = std::max(peak, engine.stats().kv_blocks_used);
    }
  }
  state.counters["kv_blocks_peak"] = peak;
  state.counters["ttft_ms_mean"] = ttft_sum / (double(n_req) * double(state.iterations()));
  state.counters["ttft_ms_max"] = ttft_max;
}

}  // namespace

BENCHMARK(BM_PrefixSharing)->Name("UPG_PrefixSharing")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Iterations(1);
