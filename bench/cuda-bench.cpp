// UPG_Cuda*: the CUDA backend on its GPU (each skips, saying why, without one).
//   UPG_CudaCopy: a 1 GiB device-to-device copy, the bandwidth the GEMVs are measured against
//     (bytes read plus written).
//   UPG_CudaGemv/<kind>: y = W x at 5120 x 5120, one token, rotating over enough matrices
//     (over 200 MB) that every launch reads its weights from HBM, not the 50 MB L2; dense
//     and GGUF types, and UPG layouts of random values (nm24_int8: 2:4 int8, mdcsr50_int8:
//     50% unstructured int8, int4_g128_zp / int4_g32: dense int4 groups).
//   UPG_CudaPhi4Layer/<kind>: the seven GEMVs of one Phi-4 layer at decode (340M weights).
//   UPG_CudaPhi4Layer32/<kind>: the same products for 32 tokens at once (a step of 32
//     sequences: the tensor-core GEMMs).
//   UPG_CudaDecode/<type>[_nopdl|_nograph]: single-stream greedy decode of a SmolLM2-shaped
//     random GGUF (kernels/cuda/test-gguf-model.h), 128 tokens after a 16-token prompt,
//     picks made on the GPU, with CUDA graphs and programmatic dependent launch (the
//     defaults), without PDL, and without graphs.
//   UPG_CudaDecode32/<type>[_nopdl]: 32 sequences decoded side by side, 64 steps of 32
//     tokens (aggregate tok/s).
//   UPG_CudaDecodeLong/smollm2_q8_0_depth<d>: single stream, 128 tokens after a d-token
//     prompt (attention over d cached positions a step).
//   UPG_CudaPrefill/<type>: one 512-token prompt (prefill tok/s).
//   UPG_CudaTensorParallel/phi4x8_q4_0_<n>ranks_<s>seq: a Phi-4-shaped random GGUF (8 of
//     its layers) split over n GPUs (tensor parallelism), single stream and 32 sequences;
//     UPG_CudaAllReduce/<n>ranks_<s>seq: one NCCL all-reduce of a step's residual stream.
//     Both skip with fewer GPUs than ranks or without NCCL.
// An iteration is many queued launches (10 copies, 200 GEMVs) and one synchronizing
// download, timed on the wall clock, so the sync is amortized; per-launch figures are
// counters (GB_s, us_per_gemv).
#include <benchmark/benchmark.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/cpu/test-random-blocks.h"
#include "kernels/cuda/test-gguf-model.h"
#include "upg/core/error.h"
#include "upg/format/format.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/communicator.h"
#include "upg/kernels_cuda/cuda.h"
#include "upg/model/model.h"

namespace {

using namespace upg;

bool have_cuda(benchmark::State& state) {
  std::string why;
  if (cuda_available(&why)) return true;
  state.SkipWithError(why.c_str());
  return false;
}

void sync(Backend& be, const BackendBuffer& b) {
  float x;
  be.download(&x, b.data(), sizeof x);
}

void BM_CudaCopy(benchmark::State& state) {
  if (!have_cuda(state)) return;
  auto be = make_cuda_backend();
  const size_t bytes = size_t(1) << 30;
  BackendBuffer a = be->alloc(bytes), b = be->alloc(bytes);
  constexpr int kReps = 10;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kReps; ++i) be->copy(b.data(), a.data(), bytes);
    sync(*be, b);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["GB_s"] = benchmark::Counter(2.0 * double(bytes) * kReps, benchmark::Counter::kIsIterationInvariantRate);
}

// Times `reps` queued calls of `one` (each moving `bytes` of weights) and one
// synchronizing download from `out` per iteration; counters per call.
template <class Fn>
void time_reps(benchmark::State& state, Backend& be, const BackendBuffer& out, int reps, size_t bytes,
               const char* per_call, Fn&& one) {
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) one();
    sync(be, out);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["weight_bytes"] = double(bytes);
  state.counters["GB_s"] = benchmark::Counter(double(bytes) * reps, benchmark::Counter::kIsIterationInvariantRate);
  state.counters[per_call] =
      benchmark::Counter(reps / 1e6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel(be.name());
}

// What a benchmark multiplies: a dense or GGUF type, or a UPG layout (`compressed`).
struct Kind {
  DType type = DType::F32;
  const char* compressed = nullptr;  // "nm24_int8", "mdcsr50_int8", "int4_g128_zp", "int4_g32"
};

// Host bytes of a random [rows, cols] weight of a kind (I8 with row scales 0.01).
struct RandomWeight {
  std::vector<std::byte> data;
  std::vector<float> scales;
  format::CompressedData packed;
  format::CompressedMatrix view;
  LinearWeight w;
  size_t bytes() const { return w.compressed ? view.bytes() : data.size() + scales.size() * sizeof(float); }
};

// Random compressed values: 2:4 keeps 2 random places of each 4, 50% each column with
// probability one half; int4 codes, fp16 group scales and zero points all random.
format::CompressedData random_compressed(const std::string& kind, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::vector<format::SparseRow> sparse(static_cast<size_t>(rows));
  std::uniform_int_distribution<int> value(-127, 127), bit(0, 1), place(0, 3);
  const bool int4 = kind.rfind("int4", 0) == 0;
  for (auto& row : sparse) {
    row.scale = 0.01f;
    for (int64_t c = 0; c < cols; c += 4) {
      int a = place(rng), b = place(rng);
      while (b == a) b = place(rng);
      for (int64_t i = 0; i < 4; ++i) {
        const bool kept = int4 || (kind == "nm24_int8" ? (i == a || i == b) : bit(rng) == 1);
        if (!kept) continue;
        row.cols.push_back(uint32_t(c + i));
        row.codes.push_back(int4 ? int32_t(rng() % 16) : value(rng));
      }
    }
  }
  if (kind == "nm24_int8") return format::encode_nm(cols, sparse, 2, 4);
  if (kind == "mdcsr50_int8") return format::encode_mdcsr(cols, sparse, format::Encoding::Int8);
  const int group = kind == "int4_g32" ? 32 : 128;
  const bool zeros = kind.find("_zp") != std::string::npos;
  std::vector<format::Int4Groups> groups(static_cast<size_t>(rows));
  for (auto& g : groups)
    for (int64_t i = 0; i < format::int4_groups(cols, group); ++i) {
      g.scales.push_back(fp32_to_fp16(0.001f * float(rng() % 100 + 1)));
      if (zeros) g.zeros.push_back(uint8_t(rng() % 16));
    }
  return format::encode_dense_int4(cols, sparse, groups, group);
}

std::unique_ptr<RandomWeight> random_weight(const Kind& kind, int64_t rows, int64_t cols, std::mt19937& rng) {
  auto r = std::make_unique<RandomWeight>();
  if (kind.compressed) {
    r->packed = random_compressed(kind.compressed, rows, cols, rng);
    r->view = r->packed.view();
    r->w.compressed = &r->view;
  } else if (dtype_is_quantized(kind.type)) {
    for (const auto& s : kernels::kTypes)
      if (s.type == kind.type) r->data = kernels::random_blocks(s, rows, cols, rng, false);
  } else {
    r->data.resize(dtype_bytes(kind.type, rows * cols));
    std::uniform_int_distribution<int> byte(0, 255);
    // Random bytes, with bf16/f16 exponents kept small so no value is inf or NaN.
    for (size_t j = 0; j < r->data.size(); ++j)
      r->data[j] = std::byte(j % 2 == 1 && kind.type != DType::I8 ? uint8_t(0x3C & byte(rng)) : uint8_t(byte(rng)));
  }
  if (kind.type == DType::I8 && !kind.compressed) r->scales.assign(size_t(rows), 0.01f);
  r->w.dtype = kind.type;
  r->w.data = r->data.data();
  r->w.rows = rows;
  r->w.cols = cols;
  r->w.scales = r->scales.empty() ? nullptr : r->scales.data();
  r->w.name = "gemv";
  return r;
}

// Another weight with w's values in its own memory (backends key forms by address).
std::unique_ptr<RandomWeight> copy_of(const RandomWeight& w) {
  auto r = std::make_unique<RandomWeight>();
  r->data = w.data;
  r->scales = w.scales;
  r->packed = w.packed;
  r->w = w.w;
  if (w.w.compressed) {
    r->view = r->packed.view();
    r->w.compressed = &r->view;
  }
  r->w.data = r->data.data();
  r->w.scales = r->scales.empty() ? nullptr : r->scales.data();
  return r;
}

void BM_CudaGemv(benchmark::State& state, Kind kind) {
  if (!have_cuda(state)) return;
  auto be = make_cuda_backend();
  constexpr int64_t kN = 5120;
  std::mt19937 rng(7);
  std::vector<std::unique_ptr<RandomWeight>> ws;
  ws.push_back(random_weight(kind, kN, kN, rng));
  const size_t weight_bytes = ws[0]->bytes();
  const int copies = int(std::max<size_t>(4, (size_t(200) << 20) / weight_bytes + 1));
  while (int(ws.size()) < copies) ws.push_back(copy_of(*ws[0]));
  for (const auto& w : ws) be->prepare(w->w);
  std::vector<float> x(size_t(kN), 0.5f);
  BackendBuffer xd = be->alloc(kN * 4), yd = be->alloc(kN * 4);
  be->upload(xd.data(), x.data(), kN * 4);
  int i = 0;
  time_reps(state, *be, yd, 200, weight_bytes, "us_per_gemv",
            [&] { be->matmul(ws[size_t(i++ % copies)]->w, xd.as<float>(), 1, yd.as<float>()); });
}

// One Phi-4 layer's GEMVs (hidden 5120, 40 heads and 10 KV heads of 128, intermediate
// 17920) as the forward pass runs them at decode: q, k, v on one input, o, gate and up
// on one input, down. Its 340M weights (over 300 MB at 8 bits) come from HBM each time.
// n tokens at once.
void BM_CudaPhi4Layer(benchmark::State& state, Kind kind, int64_t n) {
  if (!have_cuda(state)) return;
  auto be = make_cuda_backend();
  const int64_t h = 5120, kv = 1280, inter = 17920;
  const int64_t shapes[7][2] = {{h, h}, {kv, h}, {kv, h}, {h, h}, {inter, h}, {inter, h}, {h, inter}};
  std::mt19937 rng(11);
  std::vector<std::unique_ptr<RandomWeight>> ws;
  size_t bytes = 0;
  for (const auto& s : shapes) {
    ws.push_back(random_weight(kind, s[0], s[1], rng));
    bytes += ws.back()->bytes();
    be->prepare(ws.back()->w);
  }
  std::vector<float> x(static_cast<size_t>(n * inter));
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (float& v : x) v = g(rng);
  BackendBuffer xd = be->alloc(x.size() * 4);
  be->upload(xd.data(), x.data(), x.size() * 4);
  std::vector<BackendBuffer> ys;
  for (const auto& s : shapes) ys.push_back(be->alloc(size_t(n * s[0]) * 4));
  const float* xp = xd.as<float>();
  auto layer = [&] {
    const LinearWeight* qkv[] = {&ws[0]->w, &ws[1]->w, &ws[2]->w};
    float* yqkv[] = {ys[0].as<float>(), ys[1].as<float>(), ys[2].as<float>()};
    be->matmul_same_input(qkv, xp, n, yqkv);
    be->matmul(ws[3]->w, xp, n, ys[3].as<float>());
    const LinearWeight* gu[] = {&ws[4]->w, &ws[5]->w};
    float* ygu[] = {ys[4].as<float>(), ys[5].as<float>()};
    be->matmul_same_input(gu, xp, n, ygu);
    be->matmul(ws[6]->w, xp, n, ys[6].as<float>());
  };
  layer();
  time_reps(state, *be, ys[6], 20, bytes, "us_per_layer", layer);
}

// A random GGUF of `shape` (written once per run into the temporary folder, named by
// `tag`) on the GPU, split over `ranks` GPUs (tensor parallelism) past 1.
std::unique_ptr<Model> random_model(uint32_t ggml_type, bool graphs, int max_sequences, int context, bool pdl,
                                    const test::LlamaShape& shape, const std::string& tag, int ranks = 1) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("upg-cuda-bench-" + tag + "-" + std::to_string(ggml_type) + ".gguf")).string();
  if (!std::filesystem::exists(path)) test::write_llama_gguf(path, shape, ggml_type);
  ModelOptions o;
  o.device = Device::Cuda;
  o.context_length = context;
  o.cuda_graphs = graphs;
  o.cuda_pdl = pdl;
  o.max_sequences = max_sequences;
  o.tensor_parallel = ranks;
  return Model::from_file(path, o);
}

std::unique_ptr<Model> smol_model(uint32_t ggml_type, bool graphs, int max_sequences, int context, bool pdl = true) {
  return random_model(ggml_type, graphs, max_sequences, context, pdl, test::LlamaShape{}, "smollm2");
}

// Phi-4's layer shape (hidden 5120, 40 heads and 10 KV heads of 128, intermediate 17920,
// vocabulary 100352) with 8 of its 40 layers, so the random file is written in seconds.
test::LlamaShape phi4_shape() { return {100352, 5120, 8, 40, 10, 17920, 4096, 250000.0f}; }

// Greedy decode of n_seqs sequences side by side on `model` (an n_prompt-token prompt each),
// the picks made on the GPU: decode tok/s, single stream at 1 and aggregate past it.
void time_decode(benchmark::State& state, Model& model, int n_seqs, int n_decode, int n_prompt = 16);

// Greedy decode of n_seqs sequences side by side (a 16-token prompt each), the picks made
// on the GPU (Batch::kGreedy): single stream at 1, aggregate tok/s past it.
void BM_CudaDecode(benchmark::State& state, uint32_t ggml_type, bool graphs, bool pdl, int n_seqs) {
  if (!have_cuda(state)) return;
  auto model = smol_model(ggml_type, graphs, n_seqs, n_seqs == 1 ? 512 : 256, pdl);
  time_decode(state, *model, n_seqs, n_seqs == 1 ? 128 : 64);
}

// Single stream after a long prompt: each step's attention reads `depth` cached rows per
// head (the split over a cluster's blocks, attention.cu).
void BM_CudaDecodeLong(benchmark::State& state, uint32_t ggml_type, int depth) {
  if (!have_cuda(state)) return;
  auto model = smol_model(ggml_type, true, 1, depth + 256);
  time_decode(state, *model, 1, 128, depth);
}

// Tensor parallelism: the Phi-4-shaped model at Q4_0 over `ranks` GPUs (skips with fewer
// GPUs or without NCCL), single stream and 32 sequences.
void BM_CudaTensorParallel(benchmark::State& state, int ranks, int n_seqs) {
  if (!have_cuda(state)) return;
  std::string why;
  if (cuda_device_count() < ranks || (ranks > 1 && !nccl_available(&why))) {
    const std::string msg = why.empty() ? fmt::format("needs {} GPUs, found {}", ranks, cuda_device_count()) : why;
    state.SkipWithError(msg.c_str());
    return;
  }
  auto model = random_model(io::GGML_Q4_0, true, n_seqs, 512, true, phi4_shape(), "phi4x8", ranks);
  time_decode(state, *model, n_seqs, 64);
  state.counters["ranks"] = ranks;
}

// One all-reduce of a decode step's residual stream ([n_seqs, 5120] floats, Phi-4's
// hidden size) over `ranks` GPUs through NCCL: a step makes 2 per layer and 1 after the
// embedding, so all-reduce time per step is this times 2 * layers + 1 (81 for Phi-4).
void BM_CudaAllReduce(benchmark::State& state, int ranks, int n_seqs) {
  if (!have_cuda(state)) return;
  std::string why;
  if (cuda_device_count() < ranks || !nccl_available(&why)) {
    const std::string msg = why.empty() ? fmt::format("needs {} GPUs, found {}", ranks, cuda_device_count()) : why;
    state.SkipWithError(msg.c_str());
    return;
  }
  std::vector<std::unique_ptr<Backend>> bes;
  std::vector<Backend*> ptrs;
  for (int r = 0; r < ranks; ++r) ptrs.push_back(bes.emplace_back(make_cuda_backend(r)).get());
  auto comms = make_nccl_communicators(ptrs);
  const int64_t n = int64_t(n_seqs) * 5120;
  std::vector<BackendBuffer> bufs;
  for (auto& be : bes) bufs.push_back(be->alloc(size_t(n) * sizeof(float)));
  constexpr int kReps = 100;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;  // one thread per rank, as the model's ranks
    for (int r = 0; r < ranks; ++r)
      ts.emplace_back([&, r] {
        for (int i = 0; i < kReps; ++i) comms[size_t(r)]->all_reduce_sum(bufs[size_t(r)].as<float>(), bufs[size_t(r)].as<float>(), n);
        sync(*bes[size_t(r)], bufs[size_t(r)]);
      });
    for (auto& t : ts) t.join();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["us_per_all_reduce"] =
      benchmark::Counter(kReps / 1e6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void time_decode(benchmark::State& state, Model& m, int n_seqs, int n_decode, int n_prompt) {
  Model* model = &m;
  double decode_s = 0;
  for (auto _ : state) {
    Batch b;
    for (int s = 0; s < n_seqs; ++s)
      for (int i = 0; i < n_prompt; ++i) b.add((100 + i * 13 + s) % 40000, i, s, i + 1 == n_prompt);
    std::replace(b.want_logits.begin(), b.want_logits.end(), Batch::kLogits, Batch::kGreedy);
    model->decode(b);
    std::vector<int32_t> next(model->greedy().begin(), model->greedy().end());
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n_decode; ++i) {
      b.clear();
      for (int s = 0; s < n_seqs; ++s) b.add(next[size_t(s)], n_prompt + i, s, true);
      std::fill(b.want_logits.begin(), b.want_logits.end(), Batch::kGreedy);
      model->decode(b);
      std::copy(model->greedy().begin(), model->greedy().end(), next.begin());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    decode_s += s;
    state.SetIterationTime(s);
  }
  state.counters[n_seqs == 1 ? "decode_tok_s" : "aggregate_tok_s"] =
      double(n_seqs) * n_decode * double(state.iterations()) / decode_s;
  state.SetLabel(model->backend().name());
}

void BM_CudaPrefill(benchmark::State& state, uint32_t ggml_type) {
  if (!have_cuda(state)) return;
  const int n_prompt = 512;
  auto model = smol_model(ggml_type, true, 1, 1024);
  Batch b;
  for (int i = 0; i < n_prompt; ++i) b.add(100 + (i * 7919) % 40000, i, 0, i + 1 == n_prompt);
  model->decode(b);  // first use: scratch sizes
  double total = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    model->decode(b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total += s;
    state.SetIterationTime(s);
  }
  state.counters["prefill_tok_s"] = n_prompt * double(state.iterations()) / total;
  state.SetLabel(model->backend().name());
}

}  // namespace

BENCHMARK(BM_CudaCopy)->Name("UPG_CudaCopy/1GiB")->UseManualTime()->Unit(benchmark::kMicrosecond);
// Per-call kernels, in microseconds: GEMVs per weight type, and a Phi-4 layer's.
const int kKernelBenchmarks = [] {
  using upg::DType;
  using K = Kind;
  const std::pair<const char*, K> gemv[] = {
      {"int8", K{DType::I8}},        {"bf16", K{DType::BF16}},    {"f16", K{DType::F16}},
      {"q8_0", K{DType::Q8_0}},      {"q4_0", K{DType::Q4_0}},    {"q4_1", K{DType::Q4_1}},
      {"q4_k", K{DType::Q4_K}},      {"q6_k", K{DType::Q6_K}},    {"nm24_int8", K{DType::F32, "nm24_int8"}},
      {"mdcsr50_int8", K{DType::F32, "mdcsr50_int8"}},            {"int4_g128_zp", K{DType::F32, "int4_g128_zp"}},
      {"int4_g32", K{DType::F32, "int4_g32"}}};
  for (const auto& [tag, k] : gemv)
    benchmark::RegisterBenchmark((std::string("UPG_CudaGemv/") + tag + "_5120").c_str(), BM_CudaGemv, k)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  const std::pair<const char*, K> layer[] = {{"int8", K{DType::I8}},
                                             {"q8_0", K{DType::Q8_0}},
                                             {"q4_0", K{DType::Q4_0}},
                                             {"bf16", K{DType::BF16}},
                                             {"nm24_int8", K{DType::F32, "nm24_int8"}}};
  for (const auto& [tag, k] : layer)
    for (const int64_t n : {1, 32})
      benchmark::RegisterBenchmark((std::string(n == 1 ? "UPG_CudaPhi4Layer/" : "UPG_CudaPhi4Layer32/") + tag).c_str(),
                                   BM_CudaPhi4Layer, k, n)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
  return 0;
}();
#define UPG_DECODE(TYPE, GGML)                                                                                   \
  BENCHMARK_CAPTURE(BM_CudaDecode, TYPE, upg::io::GGML, true, true, 1)                                            \
      ->Name("UPG_CudaDecode/smollm2_" #TYPE)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);      \
  BENCHMARK_CAPTURE(BM_CudaDecode, TYPE##_nopdl, upg::io::GGML, true, false, 1)                                   \
      ->Name("UPG_CudaDecode/smollm2_" #TYPE "_nopdl")->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3); \
  BENCHMARK_CAPTURE(BM_CudaDecode, TYPE##_nograph, upg::io::GGML, false, true, 1)                                 \
      ->Name("UPG_CudaDecode/smollm2_" #TYPE "_nograph")->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3); \
  BENCHMARK_CAPTURE(BM_CudaDecode, TYPE##_32, upg::io::GGML, true, true, 32)                                      \
      ->Name("UPG_CudaDecode32/smollm2_" #TYPE)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);    \
  BENCHMARK_CAPTURE(BM_CudaDecode, TYPE##_32_nopdl, upg::io::GGML, true, false, 32)                               \
      ->Name("UPG_CudaDecode32/smollm2_" #TYPE "_nopdl")->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3); \
  BENCHMARK_CAPTURE(BM_CudaPrefill, TYPE, upg::io::GGML)                                                          \
      ->Name("UPG_CudaPrefill/smollm2_" #TYPE)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
// Tensor parallelism at 1, 2 and 4 GPUs, and its all-reduce alone (2 and 4).
const int kTensorParallelBenchmarks = [] {
  for (int ranks : {1, 2, 4}) {
    for (int seqs : {1, 32})
      benchmark::RegisterBenchmark(fmt::format("UPG_CudaTensorParallel/phi4x8_q4_0_{}ranks_{}seq", ranks, seqs).c_str(),
                                   BM_CudaTensorParallel, ranks, seqs)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->Iterations(3);
    if (ranks > 1)
      for (int seqs : {1, 32})
        benchmark::RegisterBenchmark(fmt::format("UPG_CudaAllReduce/{}ranks_{}seq", ranks, seqs).c_str(),
                                     BM_CudaAllReduce, ranks, seqs)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}();
UPG_DECODE(q8_0, GGML_Q8_0)
BENCHMARK_CAPTURE(BM_CudaDecodeLong, q8_0_1024, upg::io::GGML_Q8_0, 1024)
    ->Name("UPG_CudaDecodeLong/smollm2_q8_0_depth1024")->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_CudaDecodeLong, q8_0_4096, upg::io::GGML_Q8_0, 4096)
    ->Name("UPG_CudaDecodeLong/smollm2_q8_0_depth4096")->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
UPG_DECODE(q4_0, GGML_Q4_0)
UPG_DECODE(f16, GGML_F16)
#undef UPG_DECODE
