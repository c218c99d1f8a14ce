// UPG_Lookup and UPG_Draft: speculative decoding against plain decoding, one request at
// a time, temperature 0, on the default model's GGUF: the input-grounded prompts of
// tests/fixtures/prompts/grounded.jsonl (rewrite, extract, continue code: the answer
// repeats the input) and the open chat prompts of tests/fixtures/prompts/chat.txt. Each
// prompt runs plain, then speculatively (prompt lookup with --lookup 4, or a compressed
// copy of the model drafting 4 tokens), back to back, so both see the same machine.
// Counters: decode tok/s of each (tokens after the first over the time after it), their
// ratio, the drafts' acceptance rate and the tokens per forward pass.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench-models.h"
#include "core/test-paths.h"
#include "upg/core/error.h"
#include "upg/engine/generate.h"
#include "upg/model/model.h"
#include "upg/tokenizer/tokenizer.h"

namespace {

std::vector<std::string> prompt_set(bool grounded) {
  std::vector<std::string> out;
  std::ifstream in(upg::test::fixture(grounded ? "prompts/grounded.jsonl" : "prompts/chat.txt"));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(grounded ? nlohmann::json::parse(line)["prompt"].get<std::string>() : line);
  return out;
}

// draft: a UPG file drafting for the model; empty: prompt lookup.
void run_speculative(benchmark::State& state, bool grounded, const std::string& draft_path) {
  const std::string path = upg::test::default_model_path();
  if (!std::ifstream(path).good()) {
    state.SkipWithError("default model missing: run scripts/fetch-model.sh");
    return;
  }
  const bool smoke = std::getenv("UPG_BENCH_SMOKE") != nullptr;
  std::vector<std::string> prompts = prompt_set(grounded);
  prompts.resize(std::min<size_t>(prompts.size(), smoke ? 1 : 8));
  upg::ModelOptions o;
  o.context_length = 1024;
  o.n_threads = 2;
  auto model = upg::Model::from_file(path, o);
  std::unique_ptr<upg::Model> draft;
  if (!draft_path.empty()) draft = upg::Model::from_file(draft_path, o);
  const upg::Tokenizer& tok = model->tokenizer();
  double tokens[2] = {0, 0}, seconds[2] = {0, 0}, forwards = 0, generated = 0, drafted = 0, accepted = 0;
  for (auto _ : state) {
    for (const std::string& p : prompts) {
      for (const bool speculate : {false, true}) {
        upg::EngineOptions eo;
        if (speculate && draft) eo.speculative.draft = draft.get();
        else if (speculate) eo.speculative.lookup = 4;
        upg::Engine engine(*model, eo);
        upg::Request r;
        r.prompt = tok.encode(tok.apply_chat_template({{"user", p}}, true), tok.add_bos(), true);
        r.sampling.temperature = 0;
        r.max_new_tokens = smoke ? 8 : 160;
        const upg::GenerateStats st = upg::generate(engine, r, [](std::string_view) { return true; });
        const int i = speculate;
        tokens[i] += st.generated_tokens - 1;
        seconds[i] += st.decode_seconds;
        if (i) {
          forwards += double(st.forward_passes);
          generated += st.generated_tokens;
          drafted += double(st.drafted_tokens);
          accepted += double(st.accepted_tokens);
        }
      }
    }
  }
  const double plain = seconds[0] > 0 ? tokens[0] / seconds[0] : 0, fast = seconds[1] > 0 ? tokens[1] / seconds[1] : 0;
  state.counters["plain_tok_s"] = plain;
  state.counters["spec_tok_s"] = fast;
  state.counters["speedup"] = plain > 0 ? fast / plain : 0;
  state.counters["accept_rate"] = drafted > 0 ? accepted / drafted : 0;
  state.counters["tok_per_forward"] = forwards > 0 ? generated / forwards : 0;
  state.SetLabel(model->backend().name());
}

void BM_Lookup(benchmark::State& state) { run_speculative(state, state.range(0) == 0, ""); }

void BM_Draft(benchmark::State& state, upg::bench::Variant v) {
  std::string draft;
  try {
    if (std::ifstream(upg::bench::model_path()).good()) draft = upg::bench::upg_file(v);
  } catch (const upg::Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  run_speculative(state, state.range(0) == 0, draft);
}

}  // namespace

BENCHMARK(BM_Lookup)->Name("UPG_Lookup/gguf_q4_1/grounded")->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_Lookup)->Name("UPG_Lookup/gguf_q4_1/chat")->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Iterations(1);
BENCHMARK_CAPTURE(BM_Draft, upg_2_4, upg::bench::Variant::NM24)->Name("UPG_Draft/upg_2_4/grounded")->Arg(0)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Draft, upg_2_4, upg::bench::Variant::NM24)->Name("UPG_Draft/upg_2_4/chat")->Arg(1)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Draft, upg_50, upg::bench::Variant::Unstructured50)->Name("UPG_Draft/upg_50/grounded")->Arg(0)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
