// CPU kernel throughput: matmul for the SmolLM2-135M shapes (decode n_tokens=1 and a
// 64-token prefill batch) against plain memory-read bandwidth, on a 2-thread pool.
// bytes_per_second counts weight bytes, so for decode it should approach the stream-read
// figure. Each iteration uses the next of several weight copies whose total exceeds the
// L3, so the numbers are DRAM numbers as in a real decode step (the model's 134M weights
// never fit in cache).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "upg/kernels/backend.h"
#include "kernels/cpu/kernels.h"
#include "upg/core/tensor.h"

namespace {

using upg::DType;
using upg::ThreadPool;

// More than any L3 this runs on. The smoke run (UPG_BENCH_SMOKE: scripts/bench.sh --smoke,
// the ctest bench-smoke) only checks that each benchmark runs, and 16 MiB still cycles
// through several weight copies and KV layers without filling 256 MiB for each benchmark
// (that filling was most of the smoke run's time).
size_t cold_bytes() {
  static const size_t bytes = std::getenv("UPG_BENCH_SMOKE") ? size_t(16) << 20 : size_t(256) << 20;
  return bytes;
}

upg::ThreadPool& pool2() {
  static ThreadPool pool(2);
  return pool;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte, AlignedFree>;

Buffer alloc(size_t bytes) {
  return Buffer(static_cast<std::byte*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
}

// Weights in `type` holding small finite values (random bit patterns could be NaN or
// denormal, which would time the FPU's slow path rather than the memory system).
void fill(DType type, std::byte* dst, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
  for (int64_t i = 0; i < n; ++i) {
    const float v = dist(rng);
    if (type == DType::F32) {
      std::memcpy(dst + i * 4, &v, 4);
    } else {
      const uint16_t h = type == DType::F16 ? upg::fp32_to_fp16(v) : upg::fp32_to_bf16(v);
      std::memcpy(dst + i * 2, &h, 2);
    }
  }
}

void BM_Matmul(benchmark::State& state, DType type) {
  const int64_t rows = state.range(0), cols = state.range(1), n_tokens = state.range(2);
  const size_t wbytes = upg::dtype_bytes(type, rows * cols);
  const size_t copies = std::max<size_t>(1, cold_bytes() / wbytes);
  std::mt19937 rng(1);
  Buffer w = alloc(wbytes * copies);
  fill(type, w.get(), rows * cols, rng);
  for (size_t c = 1; c < copies; ++c) std::memcpy(w.get() + c * wbytes, w.get(), wbytes);
  std::vector<float> x(static_cast<size_t>(n_tokens * cols), 0.5f), y(static_cast<size_t>(n_tokens * rows));
  size_t next = 0;
  for (auto _ : state) {
    upg::kernels::matmul(pool2(), type, w.get() + next * wbytes, rows, cols, x.data(), n_tokens, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    next = (next + 1) % copies;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wbytes));
  state.SetItemsProcessed(state.iterations() * n_tokens);  // tokens
  state.SetLabel(upg::kernels::simd_target());
}

void matmul_args(benchmark::internal::Benchmark* b) {
  for (int64_t n_tokens : {1, 64}) {
    b->Args({576, 1536, n_tokens});
    b->Args({1536, 576, n_tokens});
    b->Args({49152, 576, n_tokens});
  }
  b->ArgNames({"rows", "cols", "tokens"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_Matmul, F32, DType::F32)->Apply(matmul_args);
BENCHMARK_CAPTURE(BM_Matmul, F16, DType::F16)->Apply(matmul_args);
BENCHMARK_CAPTURE(BM_Matmul, BF16, DType::BF16)->Apply(matmul_args);

// Streaming read with the same SIMD loads as the kernels (dot of a buffer with itself,
// so each byte comes from DRAM once), on 1 or 2 threads: the ceiling a bandwidth-bound
// GEMV can reach.
void BM_StreamRead(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t bytes = cold_bytes();
  Buffer buf = alloc(bytes);
  auto* f = reinterpret_cast<float*>(buf.get());
  const int64_t n = static_cast<int64_t>(bytes / sizeof(float));
  std::fill(f, f + n, 1.0f);  // normal values: tiny ones would hit denormal assists
  ThreadPool one(1);
  ThreadPool& pool = threads == 1 ? one : pool2();
  std::vector<float> sums(2);
  for (auto _ : state) {
    pool.parallel_for(n / 1024, [&](int64_t b, int64_t e, int t) {
      sums[t] = upg::kernels::dot(f + b * 1024, f + b * 1024, (e - b) * 1024);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_StreamRead)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

// Cost of one parallel region with trivial work: what the ~210 matmuls of a decode step
// pay on top of their memory traffic.
void BM_ParallelForOverhead(benchmark::State& state) {
  std::vector<int64_t> sink(2);
  for (auto _ : state) {
    pool2().parallel_for(2, [&](int64_t b, int64_t, int t) { sink[t] += b; });
    benchmark::DoNotOptimize(sink.data());
  }
}
BENCHMARK(BM_ParallelForOverhead)->UseRealTime();

// One decode token's attention through the CPU backend, SmolLM2-135M's heads (9 query,
// 3 KV, 64 wide) at position P, 2 threads. cold = 1 cycles through enough layers that
// the KV cache comes from DRAM, as in a decode step, where the weights streamed since a
// layer's last attention have evicted its keys and values; cold = 0 repeats one layer.
void BM_AttentionDecode(benchmark::State& state) {
  const int P = int(state.range(0)), n_heads = 9, n_kv = 3, hd = 64;
  const upg::DType type = state.range(2) ? upg::DType::I8 : upg::DType::F16;  // the cache's type
  auto be = upg::make_cpu_backend(2);
  // One layer first, for its size (the backend maps the cache's pages lazily, so this
  // costs nothing), then as many as make the cache cold.
  be->kv_alloc(1, 1, P, n_kv, hd, type);
  const size_t layer_bytes = be->kv_bytes();
  const int layers = state.range(1) ? int(cold_bytes() / layer_bytes) + 1 : 1;
  if (layers > 1) be->kv_alloc(layers, 1, P, n_kv, hd, type);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  std::vector<float> kv(size_t(n_kv) * hd), q(size_t(n_heads) * hd), out(q.size());
  for (float& x : q) x = dist(rng);
  for (int l = 0; l < layers; ++l)
    for (int64_t p = 0; p < P; ++p) {
      for (float& x : kv) x = dist(rng);
      be->kv_store(l, std::span<const int64_t>(&p, 1), kv.data(), kv.data());
    }
  const int32_t pos = P - 1;
  const int32_t table = 0, begin = 0;  // one block of P slots
  const upg::AttentionBatch b{std::span<const int32_t>(&pos, 1), std::span<const int32_t>(&table, 1),
                              std::span<const int32_t>(&begin, 1), P, n_heads, n_kv, hd, 0};
  int l = 0;
  for (auto _ : state) {
    be->attention(l, q.data(), b, out.data());
    l = (l + 1) % layers;
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(layer_bytes));
}
BENCHMARK(BM_AttentionDecode)
    ->ArgsProduct({{256, 1024, 4096}, {0, 1}, {0, 1}})
    ->ArgNames({"pos", "cold", "int8"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
