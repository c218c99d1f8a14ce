// The CUDA backend's staged tensor-core GEMM (matmul-staged.cu: weights too large for L2,
// and 2:4 int8, past 8 tokens) against the CPU's fast int8 kernels, which quantize the
// activations the same way: equal integer sums, only the order of the scaled fp32 sums
// differs. Matrices above kStagedBytes with rows that leave a partial 64-row block and
// columns that leave a partial 128-column stage; 9 to 64 tokens (a partial and two whole
// 32-token tiles); outputs poisoned with NaN first, so an unwritten one fails. Skips
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "format/format-test-util.h"
#include "kernels/cuda/test-cuda.h"
#include "upg/format/format.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/cpu.h"
#include "upg/kernels_cuda/cuda.h"

namespace upg {
namespace {

constexpr double kTol = 2e-5;
// 129 groups of 32 columns: the last 128-column stage holds one.
constexpr int64_t kCols = 4128;

// A random weight that lives as long as the test (backends key forms by address):
// dense int8 codes with row scales, or 2:4 int8 in the file's layout.
struct Weight {
  std::vector<int8_t> codes;
  std::vector<float> scales, bias;
  format::CompressedData packed;
  format::CompressedMatrix view;
  LinearWeight w;
};

std::unique_ptr<Weight> dense_int8(int64_t rows, int64_t cols, bool bias, std::mt19937& rng) {
  auto h = std::make_unique<Weight>();
  std::uniform_int_distribution<int> code(-127, 127);
  h->codes.resize(size_t(rows * cols));
  for (auto& c : h->codes) c = int8_t(code(rng));
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  for (int64_t r = 0; r < rows; ++r) h->scales.push_back(scale(rng));
  if (bias) h->bias = test::normal(rng, size_t(rows));
  h->w.dtype = DType::I8;
  h->w.data = h->codes.data();
  h->w.scales = h->scales.data();
  h->w.bias = h->bias.empty() ? nullptr : h->bias.data();
  h->w.rows = rows;
  h->w.cols = cols;
  h->w.name = "test.weight";
  return h;
}

std::unique_ptr<Weight> two_four(int64_t rows, int64_t cols, bool bias, std::mt19937& rng) {
  auto h = std::make_unique<Weight>();
  h->packed = format::encode_nm(cols, format::testing::random_nm_rows(rng, rows, cols, 2, 4), 2, 4);
  h->view = h->packed.view();
  if (bias) h->bias = test::normal(rng, size_t(rows));
  h->w.compressed = &h->view;
  h->w.bias = h->bias.empty() ? nullptr : h->bias.data();
  h->w.rows = rows;
  h->w.cols = cols;
  h->w.name = "test.weight";
  return h;
}

class CudaStaged : public ::testing::Test {
 protected:
  void SetUp() override {
    UPG_SKIP_WITHOUT_CUDA();
    gpu_ = make_cuda_backend();
    cpu_ = make_cpu_backend(2, CpuKernels::Fast);
  }
  // n x rows of NaN on the GPU.
  BackendBuffer poisoned(int64_t n, int64_t rows) {
    return test::to_backend(*gpu_, std::vector<float>(size_t(n * rows), std::numeric_limits<float>::quiet_NaN()));
  }
  // Backends key a weight's form by its address: every weight a test makes stays alive
  // to its end, so no later one reuses a freed one's address (and its form).
  const Weight& keep(std::unique_ptr<Weight> w) {
    alive_.push_back(std::move(w));
    return *alive_.back();
  }
  std::unique_ptr<Backend> gpu_, cpu_;
  std::vector<std::unique_ptr<Weight>> alive_;
  std::mt19937 rng_{2718};
};

TEST_F(CudaStaged, DenseInt8AgainstCpu) {
  const int64_t rows = 2053;  // 8.5 MB: over kStagedBytes; 32 blocks and 5 rows
  for (int64_t n : {9, 17, 32, 64}) {
    SCOPED_TRACE(fmt::format("int8 [{}, {}] x {} tokens", rows, kCols, n));
    const Weight& w = keep(dense_int8(rows, kCols, n % 2 == 1, rng_));
    const std::vector<float> x = test::normal(rng_, size_t(n * kCols));
    std::vector<float> want(size_t(n * rows));
    cpu_->matmul(w.w, x.data(), n, want.data());
    BackendBuffer xd = test::to_backend(*gpu_, x), yd = poisoned(n, rows);
    gpu_->matmul(w.w, xd.as<float>(), n, yd.as<float>());
    EXPECT_LT(test::rel_error(test::from_backend<float>(*gpu_, yd, want.size()), want), kTol);
  }
}

// matmul_add: the product added onto what y holds (the residual stream).
TEST_F(CudaStaged, DenseInt8AddsOntoY) {
  const int64_t rows = 2100, n = 33;
  const Weight& w = keep(dense_int8(rows, kCols, true, rng_));
  const std::vector<float> x = test::normal(rng_, size_t(n * kCols)), y0 = test::normal(rng_, size_t(n * rows));
  std::vector<float> want(size_t(n * rows));
  cpu_->matmul(w.w, x.data(), n, want.data());
  for (size_t i = 0; i < want.size(); ++i) want[i] += y0[i];
  BackendBuffer xd = test::to_backend(*gpu_, x), yd = test::to_backend(*gpu_, y0), scratch = poisoned(n, rows);
  gpu_->matmul_add(w.w, xd.as<float>(), n, yd.as<float>(), scratch.as<float>());
  EXPECT_LT(test::rel_error(test::from_backend<float>(*gpu_, yd, want.size()), want), kTol);
}

// q, k and v of one launch: block ranges of three weights, none a whole number of blocks.
TEST_F(CudaStaged, FusedDenseInt8AgainstCpu) {
  const std::vector<int64_t> rows = {1500, 703, 703};  // 12 MB together
  for (int64_t n : {19, 32}) {
    SCOPED_TRACE(fmt::format("{} tokens", n));
    std::vector<const LinearWeight*> lw;
    std::vector<BackendBuffer> outs;
    std::vector<float*> ys;
    for (size_t i = 0; i < rows.size(); ++i) {
      lw.push_back(&keep(dense_int8(rows[i], kCols, i == 1, rng_)).w);
      outs.push_back(poisoned(n, rows[i]));
      ys.push_back(outs.back().as<float>());
    }
    const std::vector<float> x = test::normal(rng_, size_t(n * kCols));
    BackendBuffer xd = test::to_backend(*gpu_, x);
    gpu_->matmul_same_input(lw, xd.as<float>(), n, ys);
    for (size_t i = 0; i < lw.size(); ++i) {
      std::vector<float> want(size_t(n * rows[i]));
      cpu_->matmul(*lw[i], x.data(), n, want.data());
      EXPECT_LT(test::rel_error(test::from_backend<float>(*gpu_, outs[i], want.size()), want), kTol) << "weight " << i;
    }
  }
}

// 2:4 int8 runs staged at every size past 8 tokens: a small matrix and a large one.
TEST_F(CudaStaged, TwoFourAgainstCpu) {
  struct Shape {
    int64_t rows, cols;
  };
  for (const Shape s : {Shape{77, 160}, Shape{1029, kCols}})
    for (int64_t n : {9, 17, 32, 64}) {
      SCOPED_TRACE(fmt::format("2:4 [{}, {}] x {} tokens", s.rows, s.cols, n));
      const Weight& w = keep(two_four(s.rows, s.cols, n % 2 == 1, rng_));
      const std::vector<float> x = test::normal(rng_, size_t(n * s.cols));
      std::vector<float> want(size_t(n * s.rows));
      cpu_->matmul(w.w, x.data(), n, want.data());
      BackendBuffer xd = test::to_backend(*gpu_, x), yd = poisoned(n, s.rows);
      gpu_->matmul(w.w, xd.as<float>(), n, yd.as<float>());
      EXPECT_LT(test::rel_error(test::from_backend<float>(*gpu_, yd, want.size()), want), kTol);
    }
}

// The same inputs twice give the same bits: the sums' order does not depend on timing.
TEST_F(CudaStaged, RepeatsBitForBit) {
  const int64_t rows = 2053, n = 40;
  const Weight& w = keep(dense_int8(rows, kCols, false, rng_));
  const std::vector<float> x = test::normal(rng_, size_t(n * kCols));
  BackendBuffer xd = test::to_backend(*gpu_, x), y1 = poisoned(n, rows), y2 = poisoned(n, rows);
  gpu_->matmul(w.w, xd.as<float>(), n, y1.as<float>());
  gpu_->matmul(w.w, xd.as<float>(), n, y2.as<float>());
  EXPECT_EQ(test::from_backend<float>(*gpu_, y1, size_t(n * rows)), test::from_backend<float>(*gpu_, y2, size_t(n * rows)));
}

}  // namespace
}  // namespace upg
