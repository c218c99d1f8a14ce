// The CUDA backend on UPG compressed weights (every layout and encoding) against the CPU
// backend, and against each matrix's dense meaning for embed. What the GPU runs with int8
// activations (2:4 int8 in place, other int8 layouts as dense int8 rows, int4 as block
// forms) is compared with the CPU's fast kernels, which quantize the activations the same
// way: equal integer sums, only the order of the scaled sums differs. Prime and codebook
// run as fp16 rows with fp32 activations, compared with the CPU's fp32 reference: fp16
// keeps 2^-11 of each row's largest weight. 2:4 int4 with zero points runs expanded to
// dense int4, where a pruned column is d * z + m with m = fp16(-d * z): not exactly zero
// (the CPU's in-place 2:4 int4 kernel skips it), hence its looser bound. Skips without
// a GPU.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compress/synth.h"
#include "core/test-paths.h"
#include "format/format-test-util.h"
#include "io/upg-test-util.h"
#include "kernels/cuda/test-cuda.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/cpu.h"
#include "upg/kernels_cuda/cuda.h"
#include "upg/model/model.h"

namespace upg {
namespace {

using format::Encoding;
using format::Layout;
using test::from_backend;
using test::normal;
using test::rel_error;
using test::to_backend;

struct Case {
  std::string name;
  Layout layout;
  Encoding enc;
  int n = 0, m = 0;           // N:M
  int group = 0;              // int4, int3, int2
  bool zeros = false;         // int4, int3, int2
  bool fast = true;           // compared with the CPU's fast kernels (else its reference)
  double tol = 1e-4;
};

format::CompressedData build(const Case& c, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  if (format::is_grouped(c.enc))
    return c.layout == Layout::Dense ? io::testing::dense_int4(rows, cols, c.group, c.zeros, seed, format::grouped_bits(c.enc))
                                     : io::testing::nm_int4(rows, cols, c.n, c.m, c.group, c.zeros, seed);
  if (c.layout == Layout::NM) return format::encode_nm(cols, format::testing::random_nm_rows(rng, rows, cols, c.n, c.m), c.n, c.m);
  std::vector<float> codebook;
  if (c.enc == Encoding::Codebook) codebook = format::testing::random_codebook(rng, 64);
  std::vector<format::SparseRow> sparse = format::testing::random_rows(rng, rows, cols, c.enc, 64);
  if (c.enc == Encoding::Prime)
    for (auto& r : sparse) r.scale *= 1e-4f;  // prime values reach 104729
  return format::encode_mdcsr(cols, sparse, c.enc, codebook);
}

class CudaCompressed : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    UPG_SKIP_WITHOUT_CUDA();
    gpu_ = make_cuda_backend();
    cpu_fast_ = make_cpu_backend(2, CpuKernels::Fast);
    cpu_ref_ = make_cpu_backend(2, CpuKernels::Reference);
  }
  // The CPU backend that computes what the GPU does: int8 layouts whose dense rows are
  // not a multiple of 16 columns run with fp32 activations.
  Backend& cpu_for(const Case& c, int64_t cols) {
    return c.fast && (format::is_grouped(c.enc) || cols % 16 == 0) ? *cpu_fast_ : *cpu_ref_;
  }
  std::unique_ptr<Backend> gpu_, cpu_fast_, cpu_ref_;
  std::mt19937 rng_{99};
};

// Odd rows; columns a multiple of 64 (2:4 in place), of 32 but not 64, and (int8 layouts
// only) of neither (2:4 then runs as dense rows, through the fp32 kernels below 16); long
// rows (8,192 and, for 2:4 int8, 16,384 columns: many rounds of a lane's loads, as
// Phi-4's rows).
TEST_P(CudaCompressed, MatmulMatchesCpu) {
  const Case& c = GetParam();
  ASSERT_TRUE(gpu_->supports(c.layout, c.enc));
  std::vector<int64_t> widths = {640, 96, 8192};
  if (!format::is_grouped(c.enc) && c.layout == Layout::MdCsr) widths.push_back(200);
  if (c.layout == Layout::NM && c.enc == Encoding::Int8 && c.m == 4) widths.push_back(72);
  if (c.layout == Layout::NM && c.enc == Encoding::Int8 && c.n == 2 && c.m == 4) widths.push_back(16384);
  std::vector<std::unique_ptr<format::CompressedData>> alive;  // forms are keyed by address
  uint32_t seed = 5;
  for (int64_t cols : widths)
    for (int64_t n : {1, 3, 9, 17}) {
      const int64_t rows = 45;
      SCOPED_TRACE(fmt::format("{} [{}, {}] x {} tokens", c.name, rows, cols, n));
      alive.push_back(std::make_unique<format::CompressedData>(build(c, rows, cols, seed++)));
      const format::CompressedMatrix view = alive.back()->view();
      LinearWeight w;
      w.rows = rows;
      w.cols = cols;
      w.compressed = &view;
      w.name = "test.weight";
      const std::vector<float> bias = normal(rng_, size_t(rows));
      if (n % 2 == 1) w.bias = bias.data();
      const std::vector<float> x = normal(rng_, size_t(n * cols));
      std::vector<float> want(size_t(n * rows));
      cpu_for(c, cols).matmul(w, x.data(), n, want.data());
      BackendBuffer xd = to_backend(*gpu_, x), yd = gpu_->alloc(want.size() * sizeof(float));
      gpu_->matmul(w, xd.as<float>(), n, yd.as<float>());
      EXPECT_LT(rel_error(from_backend<float>(*gpu_, yd, want.size()), want), c.tol);
    }
}

// Rows of a compressed table as its dense meaning (format::decode_row).
TEST_P(CudaCompressed, EmbedDecodesRows) {
  const Case& c = GetParam();
  const int64_t rows = 21, cols = 128;
  const format::CompressedData data = build(c, rows, cols, 77);
  const format::CompressedMatrix view = data.view();
  LinearWeight w;
  w.rows = rows;
  w.cols = cols;
  w.compressed = &view;
  w.name = "test.embed";
  const std::vector<int32_t> tokens = {0, 20, 7, 7, 13};
  std::vector<float> want(tokens.size() * size_t(cols));
  for (size_t t = 0; t < tokens.size(); ++t) format::decode_row(view, tokens[t], want.data() + t * size_t(cols));
  BackendBuffer td = to_backend(*gpu_, tokens), out = gpu_->alloc(want.size() * sizeof(float));
  gpu_->embed(w, std::span<const int32_t>(td.as<int32_t>(), tokens.size()), out.as<float>());
  // fp16 rows (prime, codebook) and fp16 int4 minimums (zero points) round; the rest is
  // exact.
  EXPECT_LT(rel_error(from_backend<float>(*gpu_, out, want.size()), want), c.zeros || !c.fast ? 2e-3 : c.tol);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, CudaCompressed,
    ::testing::Values(Case{"mdcsr_int8", Layout::MdCsr, Encoding::Int8},
                      Case{"mdcsr_prime", Layout::MdCsr, Encoding::Prime, 0, 0, 0, false, false, 2e-3},
                      Case{"mdcsr_codebook", Layout::MdCsr, Encoding::Codebook, 0, 0, 0, false, false, 2e-3},
                      Case{"nm_2_4", Layout::NM, Encoding::Int8, 2, 4}, Case{"nm_4_8", Layout::NM, Encoding::Int8, 4, 8},
                      Case{"nm_1_4", Layout::NM, Encoding::Int8, 1, 4},
                      Case{"dense_int4_g32_zp", Layout::Dense, Encoding::Int4, 0, 0, 32, true},
                      Case{"dense_int4_g64", Layout::Dense, Encoding::Int4, 0, 0, 64, false},
                      Case{"dense_int4_g128_zp", Layout::Dense, Encoding::Int4, 0, 0, 128, true},
                      Case{"nm_2_4_int4_g32", Layout::NM, Encoding::Int4, 2, 4, 32, false},
                      Case{"nm_2_4_int4_g64_zp", Layout::NM, Encoding::Int4, 2, 4, 64, true, true, 3e-3},
                      Case{"dense_int3_g64_zp", Layout::Dense, Encoding::Int3, 0, 0, 64, true},
                      Case{"dense_int3_g32", Layout::Dense, Encoding::Int3, 0, 0, 32, false},
                      Case{"dense_int2_g128_zp", Layout::Dense, Encoding::Int2, 0, 0, 128, true}),
    [](const auto& info) { return info.param.name; });

// A layer's q, k and v at 2:4 share one quantization and one launch; each output as the
// CPU's.
TEST(CudaCompressedFused, SameInputTwoFourWeights) {
  UPG_SKIP_WITHOUT_CUDA();
  auto gpu = make_cuda_backend();
  auto cpu = make_cpu_backend(2, CpuKernels::Fast);
  std::mt19937 rng(3);
  const int64_t cols = 576;
  const std::vector<int64_t> rows = {576, 192, 192};
  std::vector<format::CompressedData> data;
  std::vector<format::CompressedMatrix> views;
  for (int64_t r : rows) data.push_back(format::encode_nm(cols, format::testing::random_nm_rows(rng, r, cols, 2, 4), 2, 4));
  for (const auto& d : data) views.push_back(d.view());
  std::vector<LinearWeight> ws(rows.size());
  for (size_t i = 0; i < ws.size(); ++i) {
    ws[i].rows = rows[i];
    ws[i].cols = cols;
    ws[i].compressed = &views[i];
    ws[i].name = "fused";
  }
  for (int64_t n : {1, 5, 12}) {
    SCOPED_TRACE(fmt::format("{} tokens", n));
    const std::vector<float> x = normal(rng, size_t(n * cols));
    BackendBuffer xd = to_backend(*gpu, x);
    std::vector<const LinearWeight*> wp;
    std::vector<BackendBuffer> outs;
    std::vector<float*> ys;
    for (size_t i = 0; i < ws.size(); ++i) {
      wp.push_back(&ws[i]);
      outs.push_back(gpu->alloc(size_t(n * rows[i]) * sizeof(float)));
      ys.push_back(outs.back().as<float>());
    }
    gpu->matmul_same_input(wp, xd.as<float>(), n, ys);
    for (size_t i = 0; i < ws.size(); ++i) {
      std::vector<float> want(size_t(n * rows[i]));
      cpu->matmul(ws[i], x.data(), n, want.data());
      EXPECT_LT(rel_error(from_backend<float>(*gpu, outs[i], want.size()), want), 1e-4) << "weight " << i;
    }
  }
}

// Whole UPG files on the GPU against the CPU's fast kernels: the tiny Llama synthesized at
// 2:4 int8, 50% int8, dense int4 and dense int3 (int8 activations on both sides), prompt logits; and
// the tiny Phi-3 at 50% int8, whose fused qkv_proj and gate_up_proj run as MdCSR row
// slices that share their entry arrays (each must get its own device form).
struct SynthCase {
  const char* arch;
  const char* pattern;
  const char* values;
  const char* name;
};
class SynthOnCuda : public ::testing::TestWithParam<SynthCase> {};

TEST_P(SynthOnCuda, LogitsMatchTheCpu) {
  UPG_SKIP_WITHOUT_CUDA();
  const auto [arch, pattern, values, name] = GetParam();
  compress::SynthOptions o;
  o.config_path = test::source_dir() + "/tests/fixtures/tiny/" + arch + "/config.json";
  o.output = (std::filesystem::temp_directory_path() / fmt::format("upg-cuda-synth-{}.upg", ::getpid())).string();
  o.matrix.pattern = compress::parse_pattern(pattern);
  o.matrix.values = compress::parse_values(values);
  if (format::is_grouped(o.matrix.values.encoding)) o.matrix.sparsity = 0;  // stored dense
  o.matrix.threads = 2;
  o.quiet = true;
  compress::synth_model(o);
  ModelOptions mo;
  mo.context_length = 128;
  auto cpu = Model::from_file(o.output, mo);
  mo.device = Device::Cuda;
  auto gpu = Model::from_file(o.output, mo);
  std::filesystem::remove(o.output);
  std::vector<int32_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(int32_t((i * 37 + 5) % cpu->config().vocab_size));
  EXPECT_LT(rel_error(gpu->forward(ids), cpu->forward(ids)), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Layouts, SynthOnCuda,
                         ::testing::Values(SynthCase{"llama", "2:4", "int8", "nm24_int8"},
                                           SynthCase{"llama", "unstructured", "int8", "mdcsr50_int8"},
                                           SynthCase{"llama", "unstructured", "int4", "dense_int4"},
                                           SynthCase{"llama", "unstructured", "int3", "dense_int3"},
                                           SynthCase{"phi3", "unstructured", "int8", "phi3_fused_mdcsr50_int8"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace upg
