// The compressor's second-order work on one weight matrix, phase by phase
// (UPG_CompressLayer): the input Hessian from calibration activations (BLAS ssyrk), its
// damped inverse factor (LAPACK), the asymmetric target (BLAS), then the SparseGPT sweep
// (50% unstructured) and the GPTQ sweep (int8 per row) with their lazy block updates. The default shape is Phi-4's
// down_proj (5120 x 17920, the widest input of a 14B model) with 2048 random calibration
// tokens; the per-phase seconds are counters, so docs/COMPRESSION.md can extrapolate to a
// whole model (Hessian time grows with the tokens, the factor and the sweeps do not).
//
// UPG_BENCH_SMOKE=1 (the ctest smoke run) shrinks it to 256 x 896 and 256 tokens;
// UPG_COMPRESS_LAYER=ROWSxCOLSxTOKENS picks another shape (the sweeps grow with rows, so a
// full-width layer with fewer rows measures the factor exactly and the sweeps per row).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "compress/gptq.h"
#include "compress/hessian.h"
#include "compress/sparsegpt.h"

namespace {

using namespace upg::compress;

bool smoke() { return std::getenv("UPG_BENCH_SMOKE") != nullptr; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Activations with a spread of channel scales (as real layer inputs have), weights normal
// with the std of a trained layer's.
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed, bool scaled) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> scale(size_t(cols), 1.0f);
  if (scaled)
    for (auto& s : scale) s = std::exp(0.5f * nd(rng));
  std::vector<float> m(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m[size_t(r * cols + c)] = (scaled ? scale[size_t(c)] : 0.02f) * nd(rng);
  return m;
}

void UPG_CompressLayer(benchmark::State& state) {
  int64_t rows = smoke() ? 256 : 5120, cols = smoke() ? 896 : 17920, tokens = smoke() ? 256 : 2048;
  if (const char* shape = std::getenv("UPG_COMPRESS_LAYER")) {
    long long r = 0, c = 0, t = 0;
    if (std::sscanf(shape, "%lldx%lldx%lld", &r, &c, &t) != 3 || r <= 0 || c <= 0 || t <= 0) {
      state.SkipWithError("UPG_COMPRESS_LAYER: expected ROWSxCOLSxTOKENS");
      return;
    }
    rows = r, cols = c, tokens = t;
  }
  const int threads = int(state.range(0));
  const std::vector<float> x = random_matrix(tokens, cols, 1, true), w0 = random_matrix(rows, cols, 2, false);
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    Hessian H = make_hessian(cols);
    constexpr int64_t kChunk = 512;  // as the engine hands calibration tokens over
    for (int64_t t = 0; t < tokens; t += kChunk)
      accumulate_hessian(H, x.data() + t * cols, std::min(kChunk, tokens - t), threads);
    symmetrize(H);
    state.counters["hessian_s"] = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    double lambda = 0;
    const std::vector<float> u = inverse_factor(H, kSparseGptDamp, threads, &lambda);
    state.counters["factor_s"] = seconds_since(t0);
    std::vector<float> w = w0;
    // The asymmetric target with H standing in for the cross term (the same products).
    t0 = std::chrono::steady_clock::now();
    sparsegpt_target(w, rows, cols, H, lambda, u, kAsymmetricBlend, threads);
    state.counters["target_s"] = seconds_since(t0);
    w = w0;
    t0 = std::chrono::steady_clock::now();
    sparsegpt_prune(w, rows, cols, u, Pattern{}, 0.5, threads, kSparseGptBlock);
    state.counters["sparsegpt_s"] = seconds_since(t0);
    w = w0;
    const Int8RowGrid grid(QuantMethod::Clip);
    GptqOptions o;
    o.grid = &grid;
    o.threads = threads;
    t0 = std::chrono::steady_clock::now();
    gptq_sweep(w, rows, cols, H, u, o);
    state.counters["gptq_s"] = seconds_since(t0);
    benchmark::DoNotOptimize(w.data());
  }
  state.counters["rows"] = double(rows);
  state.counters["cols"] = double(cols);
  state.counters["tokens"] = double(tokens);
}
BENCHMARK(UPG_CompressLayer)->Arg(2)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
