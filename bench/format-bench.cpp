// The compressed format on the CPU: MdCSR to dense (UPG_Decompress), one-token matmul per
// layout and encoding against dense baselines (UPG_SpMV), SpMV time against entry count
// (UPG_Scaling), and prime lookups / prime-weight decoding (UPG_PrimeDecode). Matrices
// are random (fixed seeds) and built straight through format::encode_*, since the
// compressor's pruning and quantization cost nothing at run time. The matmuls go through
// Backend::matmul, so they time what the engine runs.
//
// UPG_BENCH_SMOKE=1 (the ctest smoke run) shrinks every matrix to 512 x 512 under the same
// names: the run only proves the paths work.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "upg/kernels/backend.h"
#include "upg/kernels/cpu.h"
#include "upg/format/format.h"
#include "upg/format/primes.h"
#include "upg/core/tensor.h"

namespace {

namespace fmtx = upg::format;
using fmtx::Encoding;

bool smoke() { return std::getenv("UPG_BENCH_SMOKE") != nullptr; }
// UPG_SPMV_THREADS=1 times one core (default 2, the machine's).
int spmv_threads() {
  const char* t = std::getenv("UPG_SPMV_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}

// UPG_SPMV_N=576 times the default model's width (its rows are short: per-row costs
// count) under the same names; the names keep saying 5120.
int64_t spmv_size() {
  if (const char* n = std::getenv("UPG_SPMV_N")) return std::max<int64_t>(64, std::atoll(n));
  return smoke() ? 512 : 5120;
}

// The rotated set of one SpMV benchmark must exceed the last-level cache (32 MiB on the
// machine of docs/BENCHMARKS.md; 96 MiB leaves room for larger ones), or a 26 MB matrix
// would be timed from cache, which no real decode step sees.
constexpr size_t kColdBytes = 96u << 20;


// splitmix64: cheap enough that building a 5120 x 5120 matrix takes a fraction of a second.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
};

struct Spec {
  Encoding enc = Encoding::Int8;
  double keep = 0.5;  // unstructured: fraction of columns kept
  int n = 0, m = 0;   // N:M when m > 0
};

// A nonzero code of the encoding: int8 +-1..127, prime sign|1..127, codebook 1..255.
int32_t random_code(Rng& rng, Encoding enc) {
  const uint64_t r = rng.next();
  const int32_t mag = int32_t(r % 127) + 1;
  switch (enc) {
    case Encoding::Int8: return (r >> 32) & 1 ? -mag : mag;
    case Encoding::Prime: return mag | ((r >> 32) & 1 ? fmtx::kPrimeSignBit : 0);
    case Encoding::Codebook: return int32_t(r % 255) + 1;
    case Encoding::Int4:
    case Encoding::Int3:
    case Encoding::Int2: return int32_t(r % (1u << fmtx::grouped_bits(enc)));
  }
  return 1;
}

fmtx::CompressedData random_matrix(int64_t rows, int64_t cols, const Spec& s, uint64_t seed) {
  Rng rng{seed};
  std::vector<fmtx::SparseRow> sr(static_cast<size_t>(rows));
  for (auto& row : sr) {
    row.scale = 0.01f;
    if (s.m > 0) {
      int order[16];
      for (int64_t g = 0; g < cols; g += s.m) {
        for (int i = 0; i < s.m; ++i) order[i] = i;
        for (int i = 0; i < s.n; ++i) std::swap(order[i], order[i + int(rng.next() % uint64_t(s.m - i))]);
        std::sort(order, order + s.n);
        for (int i = 0; i < s.n; ++i) row.cols.push_back(uint32_t(g + order[i]));
      }
    } else {
      for (int64_t c = 0; c < cols; ++c)
        if (rng.uniform() < s.keep) row.cols.push_back(uint32_t(c));
    }
    row.codes.reserve(row.cols.size());
    for (size_t k = 0; k < row.cols.size(); ++k) row.codes.push_back(random_code(rng, s.enc));
  }
  if (fmtx::is_grouped(s.enc)) {  // groups of 64 columns, fp16 scales, symmetric
    const std::vector<fmtx::Int4Groups> groups(
        sr.size(), {std::vector<uint16_t>(size_t(fmtx::int4_groups(cols, 64)), upg::fp32_to_fp16(0.01f)), {}});
    return s.m > 0 ? fmtx::encode_nm_int4(cols, sr, groups, s.n, s.m, 64)
                   : fmtx::encode_dense_grouped(s.enc, cols, sr, groups, 64);
  }
  if (s.m > 0) return fmtx::encode_nm(cols, sr, s.n, s.m);
  std::vector<float> codebook;
  if (s.enc == Encoding::Codebook) {
    codebook.resize(256);
    for (size_t i = 1; i < codebook.size(); ++i) codebook[i] = float(rng.uniform() * 2 - 1);
  }
  return fmtx::encode_mdcsr(cols, sr, s.enc, std::move(codebook));
}

// One benchmark's rotated weights: copies of one matrix at distinct addresses (the cache
// only sees addresses, so copies are as cold as distinct matrices). Kept in a one-slot
// cache because Google Benchmark calls a benchmark function several times while it
// picks the iteration count, and a 26 MB encode per call would dominate the run.
struct WeightSet {
  std::string key;
  std::vector<fmtx::CompressedData> data;
  std::vector<fmtx::CompressedMatrix> views;
  std::vector<std::vector<std::byte>> dense;  // dense baselines: one buffer per copy
  std::vector<float> scales;                  // dense int8 per-row scales
  std::vector<upg::LinearWeight> weights;
  size_t bytes = 0;                           // of one copy
  // Its own backend: the backend keeps the repacked form of each matrix it has seen, and
  // a later set must not meet a packing made for an earlier one at a reused address.
  // Baseline sets run on their sparse set's backend and have none.
  std::unique_ptr<upg::Backend> be;
  // A rotated sparse set's dense int8 baselines (sparse_set): the same matrix, and for 2:4
  // one of as many bytes as its kernel streams.
  std::unique_ptr<WeightSet> int8, same_bytes;
  explicit WeightSet(bool own_backend = true) {
    if (own_backend) be = upg::make_cpu_backend(spmv_threads());
  }
};

size_t copies_for(size_t bytes) {
  if (smoke()) return 1;
  return std::max<size_t>(1, (kColdBytes + bytes - 1) / bytes);
}

WeightSet& cached(const std::string& key) {
  static WeightSet set;
  if (set.key != key) {
    set = WeightSet();
    set.key = key;
  }
  return set;
}

// One dense copy's bytes and row scales: the matrix of cpu_mdcsr_int8_50 (its zeros
// stored), so every SpMV bar computes the same product; `cols` below its n columns keeps
// the first ones, a dense matrix of fewer bytes.
struct DenseContent {
  upg::DType type = upg::DType::F32;
  int64_t rows = 0, cols = 0;
  std::vector<std::byte> bytes;
  std::vector<float> scales;  // int8: the matrix's row scales
};

DenseContent dense_content(upg::DType type, int64_t cols) {
  const int64_t n = spmv_size();
  const fmtx::CompressedData src = random_matrix(n, n, Spec{}, 42);
  const std::vector<float> f = fmtx::decode_dense(src.view());
  DenseContent c{type, n, cols, std::vector<std::byte>(upg::dtype_bytes(type, n * cols)), {}};
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < cols; ++k) {
      const size_t i = size_t(r * cols + k), from = size_t(r * n + k);
      if (type == upg::DType::F32) {
        reinterpret_cast<float*>(c.bytes.data())[i] = f[from];
      } else if (type == upg::DType::F16) {
        reinterpret_cast<uint16_t*>(c.bytes.data())[i] = upg::fp32_to_fp16(f[from]);
      } else {  // I8: the stored codes again, with the matrix's row scales
        reinterpret_cast<int8_t*>(c.bytes.data())[i] = int8_t(std::lround(f[from] / src.scales[size_t(r)]));
      }
    }
  if (type == upg::DType::I8) c.scales = src.scales;
  return c;
}

// The dense int8 contents of the sparse sets' baselines, by columns: built once.
const DenseContent& int8_content(int64_t cols) {
  static std::map<int64_t, DenseContent> built;
  auto it = built.find(cols);
  if (it == built.end()) it = built.emplace(cols, dense_content(upg::DType::I8, cols)).first;
  return it->second;
}

// Appends one copy of c to w and prepares it on `be`, as a model's load does (AVX2
// repacks dense int8).
void add_dense_copy(WeightSet& w, const DenseContent& c, upg::Backend& be) {
  if (w.dense.empty()) {
    w.bytes = c.bytes.size();
    w.scales = c.scales;
  }
  w.dense.push_back(c.bytes);
  upg::LinearWeight lw;
  lw.dtype = c.type;
  lw.data = w.dense.back().data();
  lw.rows = c.rows;
  lw.cols = c.cols;
  lw.scales = c.type == upg::DType::I8 ? w.scales.data() : nullptr;
  lw.name = "bench";
  w.weights.push_back(lw);
  be.prepare(lw);
}

// The columns of a dense int8 matrix of n rows with the bytes of an n x n 2:4 one as its
// kernel streams it: 3-bit pair codes and values, 19 of every 32 columns' bytes (Nm24Rows16
// on AVX-512, Nm24Rows on AVX2; the scalar target's file layout streams 20).
int64_t nm24_stream_cols(int64_t n) { return n * 19 / 32; }

// A rotated set (the SpMV and SpMM ones) comes with its dense int8 baselines
// (WeightSet::int8, same_bytes), their copies and the sparse ones allocated in turn.
// Which memory a buffer gets depends on what the process freed before it, and on the
// project's VMs some memory streams slower than other, for every kernel (docs/BENCHMARKS.md): a
// set built after another would not meet the same memory, and the ratio would measure
// the allocation order.
WeightSet& sparse_set(const std::string& key, int64_t n, const Spec& s, bool rotate) {
  WeightSet& w = cached(key);
  if (!w.weights.empty()) return w;
  w.data.push_back(random_matrix(n, n, s, 42));
  w.bytes = w.data[0].view().bytes();
  // The kernels stream the form the backend repacks at load, which can be much smaller
  // than the file's (MdCSR int8 at 70%: 0.43 bytes per weight against 0.6): rotate by a
  // lower bound of it, one byte per stored entry, so that form too exceeds the cache.
  const size_t copies = rotate ? copies_for(std::min(w.bytes, size_t(w.data[0].view().entries()))) : 1;
  w.data.reserve(copies);
  w.views.reserve(copies);  // the weights point at the views
  std::vector<std::pair<WeightSet*, const DenseContent*>> dense;
  if (rotate) {
    w.int8 = std::make_unique<WeightSet>(false);
    dense.emplace_back(w.int8.get(), &int8_content(n));
    if (s.n == 2 && s.m == 4) {
      w.same_bytes = std::make_unique<WeightSet>(false);
      dense.emplace_back(w.same_bytes.get(), &int8_content(nm24_stream_cols(n)));
    }
  }
  const auto add_dense = [&](size_t i) {
    for (const auto& [set, content] : dense)
      if (i < copies_for(content->bytes.size())) add_dense_copy(*set, *content, *w.be);
  };
  const auto add_sparse = [&](size_t i) {
    if (i >= copies) return;
    if (i > 0) w.data.push_back(w.data[0]);
    const fmtx::CompressedMatrix& v = w.views.emplace_back(w.data[i].view());
    upg::LinearWeight lw;
    lw.rows = v.rows;
    lw.cols = v.cols;
    lw.compressed = &v;
    lw.name = "bench";
    w.weights.push_back(lw);
    w.be->prepare(lw);  // repacking happens at load, not in the timed loop
  };
  size_t most = copies;
  for (const auto& d : dense) most = std::max(most, copies_for(d.second->bytes.size()));
  // Turn by turn, and which comes first alternating: either order alone still leaned a
  // few percent towards one side.
  for (size_t i = 0; i < most; ++i) {
    if (i % 2 == 0) add_dense(i), add_sparse(i);
    else add_sparse(i), add_dense(i);
  }
  return w;
}

WeightSet& dense_set(upg::DType type) {
  WeightSet& w = cached(fmt::format("dense_{}_{}", upg::dtype_name(type), spmv_size()));
  if (!w.weights.empty()) return w;
  const DenseContent c = dense_content(type, spmv_size());
  for (size_t i = 0; i < copies_for(c.bytes.size()); ++i) add_dense_copy(w, c, *w.be);
  return w;
}

// One set's times in interleaved_medians: the median call, and the slowest copy's median
// over the fastest's. Copies of one matrix hold the same bytes at different addresses, so
// a spread well above 1 is memory that streams slower.
struct Interleaved {
  double median = 0, copy_spread = 1;
};

// Each set called in turn `rounds` times on rotating copies: on a shared machine whose
// speed drifts by tens of percent between runs, alternation exposes all to the same
// drift, so their ratios hold where separate runs do not. All run on the last set's
// backend: with each set's own, the thread pool that just finished keeps spinning
// (kSpinPause, thread-pool.cpp) into the next one's call on the same two cores, a cost
// that falls on whichever call comes later and weighs more on the shorter one.
std::vector<Interleaved> interleaved_medians(std::initializer_list<WeightSet*> sets, int rounds,
                                             int64_t n_tokens = 1) {
  upg::Backend& be = *(*(sets.end() - 1))->be;
  int64_t cols = 0, rows = 0;
  for (WeightSet* w : sets) {
    cols = std::max(cols, w->weights[0].cols);
    rows = std::max(rows, w->weights[0].rows);
    for (const upg::LinearWeight& lw : w->weights) be.prepare(lw);  // no-op where done
  }
  std::vector<float> x(static_cast<size_t>(cols * n_tokens), 0.5f), y(static_cast<size_t>(rows * n_tokens));
  std::vector<std::vector<std::vector<double>>> t;  // [set][copy][call]
  for (WeightSet* w : sets) t.emplace_back(w->weights.size());
  for (int i = 0; i < rounds; ++i) {
    size_t k = 0;
    for (WeightSet* w : sets) {
      const size_t c = size_t(i) % w->weights.size();
      const auto t0 = std::chrono::steady_clock::now();
      be.matmul(w->weights[c], x.data(), n_tokens, y.data());
      t[k++][c].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<Interleaved> out;
  for (const auto& copies : t) {
    std::vector<double> all, per_copy;
    for (const std::vector<double>& c : copies) {
      if (c.empty()) continue;  // fewer rounds than copies
      all.insert(all.end(), c.begin(), c.end());
      per_copy.push_back(median(c));
    }
    const auto [lo, hi] = std::minmax_element(per_copy.begin(), per_copy.end());
    out.push_back({median(all), *hi / *lo});
  }
  return out;
}

// Seconds per SpMV of the dense f32 baseline: set by UPG_SpMV/cpu_dense_f32 when it ran
// (it is registered first), measured here on demand when a filter left it out.
double g_dense_f32_s = 0;

void spmv_loop(benchmark::State& state, WeightSet& w, int64_t n_tokens = 1) {
  const int64_t cols = w.weights[0].cols, rows = w.weights[0].rows;
  std::vector<float> x(static_cast<size_t>(cols * n_tokens)), y(static_cast<size_t>(rows * n_tokens));
  Rng rng{7};
  for (auto& v : x) v = float(rng.uniform() * 2 - 1);
  size_t next = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    w.be->matmul(w.weights[next], x.data(), n_tokens, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    next = (next + 1) % w.weights.size();
  }
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     double(std::max<int64_t>(1, state.iterations()));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(w.bytes));
  state.counters["copies"] = double(w.weights.size());
  state.SetLabel(w.be->name());
  if (w.dense.size() && w.weights[0].dtype == upg::DType::F32) g_dense_f32_s = per;
}

// Seconds per SpMV of the dense f32 baseline, as its benchmark measured it (registered
// first), or measured here when a filter left it out.
double dense_f32_seconds() {
  if (g_dense_f32_s > 0) return g_dense_f32_s;
  WeightSet& w = dense_set(upg::DType::F32);
  std::vector<float> x(static_cast<size_t>(w.weights[0].cols), 0.5f), y(static_cast<size_t>(w.weights[0].rows));
  const int reps = smoke() ? 2 : 20;
  w.be->matmul(w.weights[0], x.data(), 1, y.data());
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) w.be->matmul(w.weights[size_t(i) % w.weights.size()], x.data(), 1, y.data());
  g_dense_f32_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  return g_dense_f32_s;
}

void BM_SpMV_Dense(benchmark::State& state, upg::DType type) { spmv_loop(state, dense_set(type)); }

void BM_SpMV_Sparse(benchmark::State& state, Spec s, const char* key) {
  const double dense_s = dense_f32_seconds();  // before the sparse set evicts the dense one
  WeightSet& w = sparse_set(fmt::format("spmv_{}", key), spmv_size(), s, true);
  const auto t0 = std::chrono::steady_clock::now();
  spmv_loop(state, w);
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     double(std::max<int64_t>(1, state.iterations()));
  state.counters["ratio_vs_dense_f32"] = dense_s / per;
  // Against dense int8, the target of issue 4: interleaved medians, not separate runs.
  // For 2:4 also dense int8 over the bytes its kernel streams: the ratio those bytes
  // allow at dense int8's streaming rate, and the share of that rate 2:4 reaches.
  const int rounds = smoke() ? 2 : 200;
  const std::vector<Interleaved> t =
      w.same_bytes ? interleaved_medians({w.int8.get(), w.same_bytes.get(), &w}, rounds)
                   : interleaved_medians({w.int8.get(), &w}, rounds);
  const Interleaved &i8 = t.front(), &sparse = t.back();
  state.counters["ratio_vs_dense_int8"] = i8.median / sparse.median;
  state.counters["interleaved_int8_us"] = i8.median * 1e6;
  state.counters["interleaved_us"] = sparse.median * 1e6;
  state.counters["copy_spread_int8"] = i8.copy_spread;
  state.counters["copy_spread"] = sparse.copy_spread;
  if (w.same_bytes) {
    state.counters["ratio_ceiling"] = i8.median / t[1].median;
    state.counters["rate_vs_dense_int8"] = t[1].median / sparse.median;
    state.counters["interleaved_same_bytes_us"] = t[1].median * 1e6;
    state.counters["copy_spread_same_bytes"] = t[1].copy_spread;
  }
  state.counters["nnz"] = double(w.views[0].entries());
}

// A prompt's batch through the same matrices: 64 tokens (the largest SpMM), where
// the kernels are bound by arithmetic rather than by memory. Ratio against dense int8 at
// the same batch, interleaved.
constexpr int64_t kSpmmTokens = 64;

void BM_SpMM_Sparse(benchmark::State& state, Spec s, const char* key) {
  WeightSet& w = sparse_set(fmt::format("spmv_{}", key), spmv_size(), s, true);
  spmv_loop(state, w, kSpmmTokens);
  const std::vector<Interleaved> t = interleaved_medians({w.int8.get(), &w}, smoke() ? 2 : 20, kSpmmTokens);
  state.counters["ratio_vs_dense_int8"] = t[0].median / t[1].median;
  state.counters["interleaved_int8_ms"] = t[0].median * 1e3;
  state.counters["interleaved_ms"] = t[1].median * 1e3;
}

// Name segment of issue 5: cpu_<layout>_<encoding>[_<sparsity>]_5120.
void register_spmv() {
  using upg::DType;
  const auto dense = [](const char* name, DType t) {
    benchmark::RegisterBenchmark(fmt::format("UPG_SpMV/cpu_{}_5120", name).c_str(),
                                 [t](benchmark::State& s) { BM_SpMV_Dense(s, t); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  };
  dense("dense_f32", DType::F32);
  dense("dense_f16", DType::F16);
  dense("dense_int8", DType::I8);
  struct Case {
    const char* key;
    Spec spec;
  };
  static const Case cases[] = {
      {"mdcsr_int8_50", {Encoding::Int8, 0.5}},         {"mdcsr_int8_70", {Encoding::Int8, 0.3}},
      {"mdcsr_prime_50", {Encoding::Prime, 0.5}},       {"mdcsr_codebook_50", {Encoding::Codebook, 0.5}},
      {"nm24_int8", {Encoding::Int8, 0.5, 2, 4}},       {"nm48_int8", {Encoding::Int8, 0.5, 4, 8}},
      {"dense_int4_g64", {Encoding::Int4, 1.0}},       {"nm24_int4_g64", {Encoding::Int4, 0.5, 2, 4}},
      {"dense_int3_g64", {Encoding::Int3, 1.0}},       {"dense_int2_g64", {Encoding::Int2, 1.0}},
  };
  for (const Case& c : cases)
    benchmark::RegisterBenchmark(fmt::format("UPG_SpMV/cpu_{}_5120", c.key).c_str(),
                                 [&c](benchmark::State& s) { BM_SpMV_Sparse(s, c.spec, c.key); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  for (const Case& c : cases)
    benchmark::RegisterBenchmark(fmt::format("UPG_SpMM/cpu_{}_5120_x{}", c.key, kSpmmTokens).c_str(),
                                 [&c](benchmark::State& s) { BM_SpMM_Sparse(s, c.spec, c.key); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
}

// Square MdCSR int8 at 50%, one matrix per size and no rotation: the small sizes run from
// cache and the large ones from DRAM, which is the bend the fit should show.
void BM_Scaling(benchmark::State& state) {
  const int64_t n = state.range(0);
  WeightSet& w = sparse_set(fmt::format("scaling_{}", n), n, Spec{}, false);
  spmv_loop(state, w);
  state.counters["nnz"] = double(w.views[0].entries());
}

void scaling_args(benchmark::internal::Benchmark* b) {
  for (int64_t n : {512, 1024, 2048, 4096, 5120, 8192})
    if (!smoke() || n <= 1024) b->Arg(n);
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// Whole matrix to dense fp32 through format::decode_row into one reused buffer (touched
// once beforehand, so page faults stay out of the figure).
void BM_Decompress(benchmark::State& state) {
  const int64_t n = spmv_size();
  WeightSet& w = sparse_set(fmt::format("decompress_{}", n), n, Spec{}, false);
  const fmtx::CompressedMatrix& m = w.views[0];
  std::vector<float> dense(static_cast<size_t>(n * n), 1.0f);
  for (auto _ : state) {
    for (int64_t r = 0; r < n; ++r) fmtx::decode_row(m, r, dense.data() + r * n);
    benchmark::DoNotOptimize(dense.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n * n);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(w.bytes));
}

constexpr int64_t kLookups = 1000000;

// Random-index table lookups, the inner step of every prime-encoded weight: indices are
// pre-generated so the RNG stays out of the loop.
void BM_PrimeLookup(benchmark::State& state) {
  std::vector<uint16_t> idx(static_cast<size_t>(kLookups));
  Rng rng{3};
  for (auto& i : idx) i = uint16_t(rng.next() % upg::kPrimeCount);
  const auto table = upg::prime_table();
  for (auto _ : state) {
    uint64_t sum = 0;
    for (uint16_t i : idx) sum += table[i];
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kLookups);
}

// 1M prime-encoded weights (1024 x 1024, every entry stored) decoded to scaled fp32 by the
// format's own decoder: sign|index -> +-prime * row scale.
void BM_PrimeWeights(benchmark::State& state) {
  WeightSet& w = sparse_set("prime_weights_1M", 1024, Spec{Encoding::Prime, 1.0}, false);
  const fmtx::CompressedMatrix& m = w.views[0];
  std::vector<float> out(static_cast<size_t>(m.rows * m.cols));
  for (auto _ : state) {
    for (int64_t r = 0; r < m.rows; ++r) fmtx::decode_row(m, r, out.data() + r * m.cols);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * m.entries());
}

[[maybe_unused]] const bool registered = [] {
  register_spmv();
  return true;
}();

}  // namespace

BENCHMARK(BM_Decompress)->Name("UPG_Decompress/to_dense_5120")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Scaling)->Name("UPG_Scaling")->Apply(scaling_args);
BENCHMARK(BM_PrimeLookup)->Name("UPG_PrimeDecode/1M")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PrimeWeights)->Name("UPG_PrimeDecode/weights_1M")->Unit(benchmark::kMicrosecond);
