// Every op of the CUDA backend against the CPU backend on random inputs: odd shapes,
// padding, one and many tokens, paged block tables. Errors are ||gpu - cpu|| / ||cpu||.
// Weights the GPU runs with fp32 activations are compared with the CPU's reference
// kernels (fp32 too): summation order (1e-5); the f16 KV cache is the same on both. The K
// and XS GGUF types also carry the block form's fp16 rounding of their sub-block scales
// (2^-11 relative; the CPU reference dequantizes exactly), hence their 1e-3. Weights the
// GPU runs with int8 activations (dense int8, Q4_0, Q4_1, Q8_0, Q4_K) are compared with
// the CPU's fast kernels, which quantize the activations the same way and use the same
// block form: the integer sums are equal, only the order of the scaled sums differs
// (1e-5). Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "kernels/cpu/test-random-blocks.h"
#include "kernels/cuda/test-cuda.h"
#include "upg/core/error.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/cpu.h"
#include "upg/kernels_cuda/cuda.h"

namespace upg {
namespace {

using test::from_backend;
using test::normal;
using test::rel_error;
using test::to_backend;

constexpr double kTol = 2e-5;

// The K and XS types' sub-block scales are products the block form rounds to fp16.
double tolerance(DType t) { return dtype_block_elems(t) == 256 ? 1e-3 : kTol; }

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UPG_SKIP_WITHOUT_CUDA();
    gpu_ = make_cuda_backend();
    cpu_ = make_cpu_backend(2, CpuKernels::Reference);
    cpu_fast_ = make_cpu_backend(2, CpuKernels::Fast);
  }
  // The CPU backend that computes what the GPU does for a weight of t with cols columns.
  Backend& cpu_for(DType t, int64_t cols) {
    const bool int8 = (t == DType::I8 && cols % 16 == 0) || t == DType::Q4_0 || t == DType::Q4_1 ||
                      t == DType::Q8_0 || t == DType::Q4_K;
    return int8 ? *cpu_fast_ : *cpu_;
  }
  std::unique_ptr<Backend> gpu_, cpu_, cpu_fast_;
  std::mt19937 rng_{1234};
};

// Host bytes of a random [rows, cols] weight of `t`, with per-row scales for I8.
struct HostWeight {
  std::vector<std::byte> data;
  std::vector<float> scales, bias;
  LinearWeight lw;
};

HostWeight random_weight(DType t, int64_t rows, int64_t cols, bool bias, std::mt19937& rng) {
  HostWeight h;
  if (dtype_is_quantized(t)) {
    for (const auto& s : kernels::kTypes)
      if (s.type == t) h.data = kernels::random_blocks(s, rows, cols, rng, false);
  } else {
    const std::vector<float> f = normal(rng, size_t(rows * cols), 0.1f);
    h.data.resize(dtype_bytes(t, rows * cols));
    if (t == DType::I8) {
      std::uniform_int_distribution<int> q(-127, 127);
      for (auto& b : h.data) b = std::byte(uint8_t(int8_t(q(rng))));
      h.scales = normal(rng, size_t(rows), 0.01f);
    } else if (t == DType::F32) {
      std::memcpy(h.data.data(), f.data(), h.data.size());
    } else {
      for (size_t i = 0; i < f.size(); ++i) {
        const uint16_t v = t == DType::F16 ? fp32_to_fp16(f[i]) : uint16_t(std::bit_cast<uint32_t>(f[i]) >> 16);
        std::memcpy(h.data.data() + 2 * i, &v, 2);
      }
    }
  }
  if (bias) h.bias = normal(rng, size_t(rows));
  h.lw.dtype = t;
  h.lw.data = h.data.data();
  h.lw.rows = rows;
  h.lw.cols = cols;
  h.lw.scales = h.scales.empty() ? nullptr : h.scales.data();
  h.lw.bias = h.bias.empty() ? nullptr : h.bias.data();
  h.lw.name = "test.weight";
  return h;
}

// Backends key a weight's execution form by its host address (the model's weights live as
// long as the backend), so every weight a test makes stays alive until the test ends:
// a freed one's address, reused by the next, would read the earlier form.
TEST_F(CudaBackendTest, MatmulEveryWeightKindAgainstCpu) {
  std::vector<std::unique_ptr<HostWeight>> alive;
  struct Shape {
    int64_t rows, cols;
  };
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q5_0,
                  DType::Q4_K, DType::Q6_K, DType::Q2_K, DType::IQ4_NL}) {
    const int64_t blk = dtype_block_elems(t);
    // Odd rows; columns that leave a vector tail (dense) or a half 64-column group
    // (blocks); rows of 8,192 columns (many rounds of a lane's loads, as Phi-4's rows).
    const std::vector<Shape> shapes = blk == 1 ? std::vector<Shape>{{37, 61}, {5, 8}, {130, 96}, {3, 1000}, {9, 48},
                                                                    {45, 8192}}
                                               : std::vector<Shape>{{37, blk}, {13, 3 * blk}, {130, 4 * blk}, {45, 8192}};
    for (const Shape& s : shapes)
      for (int64_t n : {1, 3, 9, 17}) {
        SCOPED_TRACE(fmt::format("{} [{}, {}] x {} tokens", dtype_name(t), s.rows, s.cols, n));
        alive.push_back(std::make_unique<HostWeight>(random_weight(t, s.rows, s.cols, n % 2 == 1, rng_)));
        const HostWeight& w = *alive.back();
        const std::vector<float> x = normal(rng_, size_t(n * s.cols));
        std::vector<float> want(size_t(n * s.rows));
        ASSERT_TRUE(w.lw.data);
        cpu_for(t, s.cols).matmul(w.lw, x.data(), n, want.data());
        BackendBuffer xd = to_backend(*gpu_, x), yd = gpu_->alloc(want.size() * sizeof(float));
        gpu_->matmul(w.lw, xd.as<float>(), n, yd.as<float>());
        EXPECT_LT(rel_error(from_backend<float>(*gpu_, yd, want.size()), want), tolerance(t));
      }
  }
}

// Several weights on one input (a layer's q, k, v): one quantization and one launch for
// up to three weights of one integer form, a launch per weight otherwise; every output
// as the CPU's.
TEST_F(CudaBackendTest, MatmulSameInputFusedAndMixed) {
  std::vector<std::unique_ptr<HostWeight>> alive;
  const int64_t cols = 192;
  struct Case {
    std::vector<DType> types;
    std::vector<int64_t> rows;
  };
  const std::vector<Case> cases = {{{DType::Q4_0, DType::Q4_0, DType::Q4_0}, {64, 21, 21}},
                                   {{DType::Q8_0, DType::Q8_0, DType::Q8_0, DType::Q8_0}, {9, 70, 3, 33}},
                                   {{DType::I8, DType::I8}, {100, 7}},
                                   {{DType::Q4_1, DType::Q8_0, DType::F16}, {17, 40, 5}}};
  for (const Case& c : cases)
    for (int64_t n : {1, 6, 19}) {
      SCOPED_TRACE(fmt::format("{} weights, first {}, {} tokens", c.types.size(), dtype_name(c.types[0]), n));
      const std::vector<float> x = normal(rng_, size_t(n * cols));
      BackendBuffer xd = to_backend(*gpu_, x);
      std::vector<const LinearWeight*> ws;
      std::vector<BackendBuffer> outs;
      std::vector<float*> ys;
      for (size_t i = 0; i < c.types.size(); ++i) {
        alive.push_back(std::make_unique<HostWeight>(random_weight(c.types[i], c.rows[i], cols, i == 1, rng_)));
        ws.push_back(&alive.back()->lw);
        outs.push_back(gpu_->alloc(size_t(n * c.rows[i]) * sizeof(float)));
        ys.push_back(outs.back().as<float>());
      }
      gpu_->matmul_same_input(ws, xd.as<float>(), n, ys);
      for (size_t i = 0; i < ws.size(); ++i) {
        std::vector<float> want(size_t(n * c.rows[i]));
        cpu_for(c.types[i], cols).matmul(*ws[i], x.data(), n, want.data());
        EXPECT_LT(rel_error(from_backend<float>(*gpu_, outs[i], want.size()), want), kTol) << "weight " << i;
      }
    }
}

TEST_F(CudaBackendTest, EmbedEveryTableKind) {
  std::vector<std::unique_ptr<HostWeight>> alive;
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(t));
    // Narrow rows, and rows wider than one block's 1024 columns (5,120: Phi-4's hidden size).
    for (int64_t cols : {dtype_block_elems(t) == 1 ? int64_t(75) : 2 * dtype_block_elems(t), int64_t(5120)}) {
      alive.push_back(std::make_unique<HostWeight>(random_weight(t, 50, cols, false, rng_)));
      const HostWeight& w = *alive.back();
      const std::vector<int32_t> tokens = {0, 49, 7, 7, 23};
      std::vector<float> want(tokens.size() * size_t(cols));
      cpu_->embed(w.lw, tokens, want.data());
      BackendBuffer td = to_backend(*gpu_, tokens), out = gpu_->alloc(want.size() * sizeof(float));
      gpu_->embed(w.lw, std::span<const int32_t>(td.as<int32_t>(), tokens.size()), out.as<float>());
      EXPECT_LT(rel_error(from_backend<float>(*gpu_, out, want.size()), want), tolerance(t)) << cols << " columns";
    }
  }
}

TEST_F(CudaBackendTest, ElementwiseOps) {
  // One norm weight a width for every run: the backend keeps its upload by host address,
  // so a weight freed and another allocated at its address would read the old upload (a
  // model's norms live as long as the backend). The widths and row counts cover each
  // rmsnorm form: rows in registers (579, 5120) or read twice (8500), with 1024 threads a
  // row (under 64 rows) or 256 (70 rows).
  std::vector<std::vector<float>> norms;
  for (int64_t dim : {579, 5120, 8500}) {
    norms.push_back(normal(rng_, size_t(dim)));
    const std::vector<float>& w = norms.back();
    for (int64_t n : {1, 7, 70}) {
      SCOPED_TRACE(fmt::format("dim {}, {} rows", dim, n));
      const std::vector<float> x = normal(rng_, size_t(n * dim)), y = normal(rng_, size_t(n * dim));
      BackendBuffer xd = to_backend(*gpu_, x), yd = to_backend(*gpu_, y), out = gpu_->alloc(x.size() * sizeof(float));
      std::vector<float> want(x.size());

      cpu_->rmsnorm(x.data(), w.data(), want.data(), dim, n, 1e-5f);
      gpu_->rmsnorm(xd.as<float>(), w.data(), out.as<float>(), dim, n, 1e-5f);
      EXPECT_LT(rel_error(from_backend<float>(*gpu_, out, want.size()), want), kTol) << "rmsnorm";

      cpu_->silu_mul(x.data(), y.data(), want.data(), n * dim);
      gpu_->silu_mul(xd.as<float>(), yd.as<float>(), out.as<float>(), n * dim);
      EXPECT_LT(rel_error(from_backend<float>(*gpu_, out, want.size()), want), kTol) << "silu_mul";

      want = y;
      cpu_->add(want.data(), x.data(), n * dim);
      gpu_->add(yd.as<float>(), xd.as<float>(), n * dim);
      EXPECT_LT(rel_error(from_backend<float>(*gpu_, yd, want.size()), want), kTol) << "add";
    }
  }
}

// rmsnorm and silu_mul quantize what they write for the matmul after them: that matmul
// gives, bit for bit, what it gives on the same values quantized by itself (the values
// downloaded and uploaded again, so no op before it wrote them).
TEST_F(CudaBackendTest, OpsQuantizeForTheNextMatmul) {
  std::vector<std::unique_ptr<HostWeight>> alive;
  std::vector<std::vector<float>> norms;
  for (int64_t dim : {576, 96, 5120}) {
    norms.push_back(normal(rng_, size_t(dim)));
    const std::vector<float>& w = norms.back();
    alive.push_back(std::make_unique<HostWeight>(random_weight(DType::Q4_0, 40, dim, false, rng_)));
    for (int64_t n : {1, 5, 70}) {
      SCOPED_TRACE(fmt::format("dim {}, {} tokens", dim, n));
      const LinearWeight& lw = alive.back()->lw;
      const std::vector<float> x = normal(rng_, size_t(n * dim)), y = normal(rng_, size_t(n * dim));
      BackendBuffer xd = to_backend(*gpu_, x), yd = to_backend(*gpu_, y), out = gpu_->alloc(x.size() * 4);
      BackendBuffer r1 = gpu_->alloc(size_t(n * 40) * 4), r2 = gpu_->alloc(size_t(n * 40) * 4);
      auto check = [&](const char* op) {
        gpu_->matmul(lw, out.as<float>(), n, r1.as<float>());
        const std::vector<float> again = from_backend<float>(*gpu_, out, x.size());
        BackendBuffer od = to_backend(*gpu_, again);
        gpu_->matmul(lw, od.as<float>(), n, r2.as<float>());
        EXPECT_EQ(from_backend<float>(*gpu_, r1, size_t(n * 40)), from_backend<float>(*gpu_, r2, size_t(n * 40)))
            << op;
      };
      gpu_->rmsnorm(xd.as<float>(), w.data(), out.as<float>(), dim, n, 1e-5f);
      check("rmsnorm");
      gpu_->silu_mul(xd.as<float>(), yd.as<float>(), out.as<float>(), n * dim);
      check("silu_mul");
    }
  }
}

// Rope tables of max_pos positions (theta 10000) rotating `rotary` of head_dim dims.
struct TestRope {
  std::vector<float> cos, sin;
  RopeTable table;
  TestRope(int head_dim, int rotary, int max_pos) : cos(size_t(max_pos * rotary / 2)), sin(cos.size()) {
    for (int p = 0; p < max_pos; ++p)
      for (int i = 0; i < rotary / 2; ++i) {
        const double a = p * std::pow(10000.0, -2.0 * i / rotary);
        cos[size_t(p * rotary / 2 + i)] = float(std::cos(a));
        sin[size_t(p * rotary / 2 + i)] = float(std::sin(a));
      }
    table = RopeTable{head_dim, rotary, max_pos, cos.data(), sin.data()};
  }
};

TEST_F(CudaBackendTest, RopePerTokenPositions) {
  const int head_dim = 64, heads = 5;
  const TestRope rope(head_dim, 48, 100);
  const RopeTable& table = rope.table;
  const std::vector<int32_t> pos = {0, 99, 5, 6, 42};
  std::vector<float> want = normal(rng_, pos.size() * heads * head_dim);
  BackendBuffer xd = to_backend(*gpu_, want), pd = to_backend(*gpu_, pos);
  cpu_->rope(want.data(), pos, heads, table);
  gpu_->rope(xd.as<float>(), std::span<const int32_t>(pd.as<int32_t>(), pos.size()), heads, table);
  EXPECT_LT(rel_error(from_backend<float>(*gpu_, xd, want.size()), want), kTol);
}

// Three sequences through shuffled blocks of one pool: a prefill of each (causal), a
// copy-on-write block copy, then one decode token each; GQA, with and without a window.
TEST_F(CudaBackendTest, PagedAttentionPrefillAndDecode) {
  for (DType kv : {DType::F16, DType::F32})
    for (int window : {0, 5}) {
      SCOPED_TRACE(fmt::format("kv {} window {}", dtype_name(kv), window));
      const int layers = 2, block = 4, n_blocks = 24, heads = 8, kv_heads = 2, hd = 64, kvd = kv_heads * hd;
      for (Backend* be : {gpu_.get(), cpu_.get()}) be->kv_alloc(layers, n_blocks, block, kv_heads, hd, kv);
      std::vector<int32_t> order(n_blocks);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng_);
      const std::vector<int> lens = {13, 1, 9};  // tokens of each sequence's prefill
      std::vector<int32_t> ids, positions, begin;
      std::vector<int64_t> slots;
      for (size_t s = 0; s < lens.size(); ++s) {
        const int32_t first = int32_t(ids.size());
        for (int b = 0; b < 5; ++b) ids.push_back(order[s * 5 + size_t(b)]);
        for (int p = 0; p < lens[s]; ++p) {
          positions.push_back(p);
          begin.push_back(first);
          slots.push_back(int64_t(ids[size_t(first + p / block)]) * block + p % block);
        }
      }
      auto run = [&](int layer) {
        const size_t n = positions.size();
        const std::vector<float> q = normal(rng_, n * heads * hd), k = normal(rng_, n * kvd), v = normal(rng_, n * kvd);
        std::vector<float> want(q.size());
        const AttentionBatch cb{positions, ids, begin, block, heads, kv_heads, hd, window};
        cpu_->kv_store(layer, slots, k.data(), v.data());
        cpu_->attention(layer, q.data(), cb, want.data());
        BackendBuffer qd = to_backend(*gpu_, q), kd = to_backend(*gpu_, k), vd = to_backend(*gpu_, v),
                      pd = to_backend(*gpu_, positions), id = to_backend(*gpu_, ids), bd = to_backend(*gpu_, begin),
                      sd = to_backend(*gpu_, slots), out = gpu_->alloc(q.size() * sizeof(float));
        const AttentionBatch gb{std::span<const int32_t>(pd.as<int32_t>(), n),
                                std::span<const int32_t>(id.as<int32_t>(), ids.size()),
                                std::span<const int32_t>(bd.as<int32_t>(), n),
                                block, heads, kv_heads, hd, window};
        gpu_->kv_store(layer, std::span<const int64_t>(sd.as<int64_t>(), n), kd.as<float>(), vd.as<float>());
        gpu_->attention(layer, qd.as<float>(), gb, out.as<float>());
        EXPECT_LT(rel_error(from_backend<float>(*gpu_, out, want.size()), want), 1e-4) << "layer " << layer;
      };
      for (int l = 0; l < layers; ++l) run(l);
      // Sequence 0 forks into a fresh block for its partly filled last block (13 = 3 * 4 + 1).
      const BlockCopy copy{ids[3], order[20]};
      for (Backend* be : {gpu_.get(), cpu_.get()}) be->kv_copy_blocks(std::span<const BlockCopy>(&copy, 1));
      ids[3] = order[20];
      // Decode: one token each at the next position.
      std::vector<int32_t> dpos, dbegin;
      std::vector<int64_t> dslots;
      for (size_t s = 0; s < lens.size(); ++s) {
        const int p = lens[s];
        dpos.push_back(p);
        dbegin.push_back(int32_t(s * 5));
        dslots.push_back(int64_t(ids[s * 5 + size_t(p / block)]) * block + p % block);
      }
      positions = dpos;
      begin = dbegin;
      slots = dslots;
      for (int l = 0; l < layers; ++l) run(l);
    }
}

// matmul_add adds onto y in the matmul's own writes: the int8 path (I8, Q4_0) and the
// fp32 one (F16, Q6_K), against the CPU's matmul then add.
TEST_F(CudaBackendTest, MatmulAddOntoTheResidual) {
  std::vector<std::unique_ptr<HostWeight>> alive;
  for (DType t : {DType::I8, DType::Q4_0, DType::F16, DType::Q6_K})
    for (int64_t n : {1, 6}) {
      SCOPED_TRACE(fmt::format("{} x {} tokens", dtype_name(t), n));
      const int64_t rows = 70, cols = 256;
      alive.push_back(std::make_unique<HostWeight>(random_weight(t, rows, cols, n == 1, rng_)));
      const LinearWeight& lw = alive.back()->lw;
      const std::vector<float> x = normal(rng_, size_t(n * cols)), y = normal(rng_, size_t(n * rows));
      std::vector<float> want = y, tmp(y.size());
      cpu_for(t, cols).matmul_add(lw, x.data(), n, want.data(), tmp.data());
      BackendBuffer xd = to_backend(*gpu_, x), yd = to_backend(*gpu_, y), scratch = gpu_->alloc(y.size() * 4);
      gpu_->matmul_add(lw, xd.as<float>(), n, yd.as<float>(), scratch.as<float>());
      EXPECT_LT(rel_error(from_backend<float>(*gpu_, yd, want.size()), want), tolerance(t));
    }
}

// rope_store rotates q and k and stores k and v as rope, rope and kv_store do on the CPU:
// q compared, the cache through attention over it (GQA, partial rotary, one and many tokens).
TEST_F(CudaBackendTest, RopeStoreIsRopeThenStore) {
  const int head_dim = 64, heads = 6, kv_heads = 2, block = 4, kvd = kv_heads * head_dim;
  const TestRope rope(head_dim, 48, 64);
  const RopeTable& table = rope.table;
  for (Backend* be : {gpu_.get(), cpu_.get()}) be->kv_alloc(1, 8, block, kv_heads, head_dim, DType::F16);
  for (int n : {7, 1}) {
    std::vector<int32_t> pos(static_cast<size_t>(n)), ids = {5, 2, 7, 0}, begin(static_cast<size_t>(n), 0);
    std::vector<int64_t> slots(static_cast<size_t>(n));
    for (int t = 0; t < n; ++t) {
      pos[size_t(t)] = n == 1 ? 7 : t;
      slots[size_t(t)] = int64_t(ids[size_t(pos[size_t(t)] / block)]) * block + pos[size_t(t)] % block;
    }
    std::vector<float> q = normal(rng_, size_t(n * heads * head_dim)), k = normal(rng_, size_t(n * kvd)),
                       v = normal(rng_, size_t(n * kvd));
    BackendBuffer qd = to_backend(*gpu_, q), kd = to_backend(*gpu_, k), vd = to_backend(*gpu_, v),
                  pd = to_backend(*gpu_, pos), sd = to_backend(*gpu_, slots), id = to_backend(*gpu_, ids),
                  bd = to_backend(*gpu_, begin), out = gpu_->alloc(q.size() * 4);
    cpu_->rope_store(0, q.data(), k.data(), v.data(), pos, slots, heads, kv_heads, table);
    gpu_->rope_store(0, qd.as<float>(), kd.as<float>(), vd.as<float>(), std::span<const int32_t>(pd.as<int32_t>(), pos.size()),
                     std::span<const int64_t>(sd.as<int64_t>(), slots.size()), heads, kv_heads, table);
    EXPECT_LT(rel_error(from_backend<float>(*gpu_, qd, q.size()), q), kTol) << n << " tokens: q";
    std::vector<float> want(q.size());
    cpu_->attention(0, q.data(), {pos, ids, begin, block, heads, kv_heads, head_dim, 0}, want.data());
    const AttentionBatch gb{std::span<const int32_t>(pd.as<int32_t>(), pos.size()),
                            std::span<const int32_t>(id.as<int32_t>(), ids.size()),
                            std::span<const int32_t>(bd.as<int32_t>(), begin.size()), block, heads, kv_heads, head_dim, 0};
    gpu_->attention(0, qd.as<float>(), gb, out.as<float>());
    EXPECT_LT(rel_error(from_backend<float>(*gpu_, out, want.size()), want), 1e-4) << n << " tokens: attention";
  }
}

// Long ranges split over a cluster's blocks (attention.cu): decode tokens at positions 40
// to 2,999 (one to eight chunks), with and without a window that cuts the longest range,
// against the CPU; then rope_store and attention for new keys and values, and the step
// after it, which reads them.
TEST_F(CudaBackendTest, LongRangesSplitOverBlocks) {
  const int heads = 9, kv_heads = 3, hd = 64, block = 16, kvd = kv_heads * hd;
  const std::vector<int32_t> pos = {2999, 700, 257, 40}, next = {3000, 701, 258, 41};
  std::vector<int32_t> ids, begin;
  for (int32_t p : pos) {
    begin.push_back(int32_t(ids.size()));
    for (int b = 0; b <= (p + 1) / block; ++b) ids.push_back(int32_t(ids.size()));
  }
  std::shuffle(ids.begin(), ids.end(), rng_);  // scattered tables
  const int n_blocks = int(ids.size());
  std::vector<int64_t> all(size_t(n_blocks * block)), slots;
  std::iota(all.begin(), all.end(), int64_t(0));
  for (size_t t = 0; t < pos.size(); ++t)
    slots.push_back(int64_t(ids[size_t(begin[t] + pos[t] / block)]) * block + pos[t] % block);
  const std::vector<float> hk = normal(rng_, all.size() * kvd), hv = normal(rng_, hk.size());
  const std::vector<float> q = normal(rng_, pos.size() * heads * hd), k = normal(rng_, pos.size() * kvd),
                           v = normal(rng_, k.size());
  const TestRope rope(hd, hd, 3002);
  for (DType cache : {DType::F16, DType::F32})
    for (int window : {0, 1000}) {
      SCOPED_TRACE(fmt::format("{} cache, window {}", dtype_name(cache), window));
      std::vector<std::vector<float>> outs;
      for (Backend* be : {gpu_.get(), cpu_.get()}) {
        be->kv_alloc(1, n_blocks, block, kv_heads, hd, cache);
        BackendBuffer ad = to_backend(*be, all), hkd = to_backend(*be, hk), hvd = to_backend(*be, hv);
        be->kv_store(0, std::span<const int64_t>(ad.as<int64_t>(), all.size()), hkd.as<float>(), hvd.as<float>());
        BackendBuffer pd = to_backend(*be, pos), nd = to_backend(*be, next), id = to_backend(*be, ids),
                      bd = to_backend(*be, begin), sd = to_backend(*be, slots), kd = to_backend(*be, k),
                      vd = to_backend(*be, v), out = be->alloc(q.size() * 4);
        AttentionBatch b{std::span<const int32_t>(pd.as<int32_t>(), pos.size()),
                         std::span<const int32_t>(id.as<int32_t>(), ids.size()),
                         std::span<const int32_t>(bd.as<int32_t>(), begin.size()),
                         block, heads, kv_heads, hd, window};
        BackendBuffer q1 = to_backend(*be, q), q2 = to_backend(*be, q), q3 = to_backend(*be, q);
        be->attention(0, q1.as<float>(), b, out.as<float>());
        outs.push_back(from_backend<float>(*be, out, q.size()));
        be->rope_store(0, q2.as<float>(), kd.as<float>(), vd.as<float>(), b.positions,
                       std::span<const int64_t>(sd.as<int64_t>(), slots.size()), heads, kv_heads, rope.table);
        be->attention(0, q2.as<float>(), b, out.as<float>());
        outs.push_back(from_backend<float>(*be, out, q.size()));
        b.positions = std::span<const int32_t>(nd.as<int32_t>(), next.size());
        be->attention(0, q3.as<float>(), b, out.as<float>());
        outs.push_back(from_backend<float>(*be, out, q.size()));
      }
      EXPECT_LT(rel_error(outs[0], outs[3]), 1e-4) << "attention";
      EXPECT_LT(rel_error(outs[1], outs[4]), 1e-4) << "rope_store, then attention";
      EXPECT_LT(rel_error(outs[2], outs[5]), 1e-4) << "the step after";
    }
}

// Attention quantizes its output for the output projection: that matmul gives, bit for
// bit, what it gives on the same values quantized by itself.
TEST_F(CudaBackendTest, AttentionQuantizesForTheOutputProjection) {
  const int heads = 4, kv_heads = 2, hd = 64, block = 4, n = 5, kvd = kv_heads * hd;
  HostWeight o = random_weight(DType::I8, 48, heads * hd, false, rng_);
  gpu_->kv_alloc(1, 4, block, kv_heads, hd, DType::F16);
  std::vector<int32_t> pos = {0, 1, 2, 3, 4}, ids = {3, 1}, begin(n, 0);
  std::vector<int64_t> slots = {12, 13, 14, 15, 4};
  const std::vector<float> q = normal(rng_, size_t(n * heads * hd)), k = normal(rng_, size_t(n * kvd)),
                           v = normal(rng_, size_t(n * kvd));
  BackendBuffer qd = to_backend(*gpu_, q), kd = to_backend(*gpu_, k), vd = to_backend(*gpu_, v),
                pd = to_backend(*gpu_, pos), sd = to_backend(*gpu_, slots), id = to_backend(*gpu_, ids),
                bd = to_backend(*gpu_, begin), out = gpu_->alloc(q.size() * 4), r1 = gpu_->alloc(n * 48 * 4),
                r2 = gpu_->alloc(n * 48 * 4);
  gpu_->kv_store(0, std::span<const int64_t>(sd.as<int64_t>(), slots.size()), kd.as<float>(), vd.as<float>());
  const AttentionBatch gb{std::span<const int32_t>(pd.as<int32_t>(), pos.size()),
                          std::span<const int32_t>(id.as<int32_t>(), ids.size()),
                          std::span<const int32_t>(bd.as<int32_t>(), begin.size()), block, heads, kv_heads, hd, 0};
  gpu_->attention(0, qd.as<float>(), gb, out.as<float>());
  gpu_->matmul(o.lw, out.as<float>(), n, r1.as<float>());
  BackendBuffer again = to_backend(*gpu_, from_backend<float>(*gpu_, out, q.size()));
  gpu_->matmul(o.lw, again.as<float>(), n, r2.as<float>());
  EXPECT_EQ(from_backend<float>(*gpu_, r1, size_t(n * 48)), from_backend<float>(*gpu_, r2, size_t(n * 48)));
}

// Greedy picks on the GPU: the first of equal maxima, as the CPU's.
TEST_F(CudaBackendTest, ArgmaxIsTheCpus) {
  for (int64_t vocab : {1, 7, 49152, 100352}) {
    const int64_t rows = 5;
    std::vector<float> logits = normal(rng_, size_t(rows * vocab));
    if (vocab > 7) {
      logits[size_t(vocab + 100)] = logits[size_t(vocab + 40000)] = 50.0f;  // a tie: the first wins
      logits[size_t(2 * vocab + vocab - 1)] = 60.0f;                          // the last column
    }
    std::vector<int32_t> want(static_cast<size_t>(rows));
    cpu_->argmax(logits.data(), rows, vocab, want.data());
    BackendBuffer ld = to_backend(*gpu_, logits), ids = gpu_->alloc(size_t(rows) * 4);
    gpu_->argmax(ld.as<float>(), rows, vocab, ids.as<int32_t>());
    EXPECT_EQ(from_backend<int32_t>(*gpu_, ids, size_t(rows)), want) << "vocab " << vocab;
  }
}

TEST_F(CudaBackendTest, UnsupportedIsAClearError) {
  EXPECT_TRUE(gpu_->supports(format::Layout::MdCsr, format::Encoding::Int8));  // as dense int8 rows
  EXPECT_FALSE(gpu_->supports(format::Layout::Dense, format::Encoding::Int8));  // not a UPG layout
  EXPECT_TRUE(gpu_->supports(format::Layout::Dense, format::Encoding::Int4));
  // int3 and int2: dense only (widened to nibbles at load), as the format allows them.
  EXPECT_TRUE(gpu_->supports(format::Layout::Dense, format::Encoding::Int3));
  EXPECT_TRUE(gpu_->supports(format::Layout::Dense, format::Encoding::Int2));
  EXPECT_FALSE(gpu_->supports(format::Layout::NM, format::Encoding::Int3));
  EXPECT_FALSE(gpu_->supports(Op::Attention, DType::I8));
  EXPECT_THROW(gpu_->kv_alloc(1, 4, 4, 1, 64, DType::I8), Error);
  // More than the device holds: the error names what and how many bytes.
  try {
    (void)gpu_->alloc(size_t(1) << 50);
    FAIL() << "a petabyte allocation succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of device memory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1125899906842624 bytes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upg
