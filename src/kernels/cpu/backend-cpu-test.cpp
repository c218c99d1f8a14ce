// The CPU backend's compressed and dense-int8 paths: matmul against the format layer's
// reference kernel (bit for bit with CpuKernels::Reference: each thread runs it on its
// own row range; within the int8 activation rounding with the fast kernels) and against
// a plain dense product of the decoded matrix, for every layout and encoding, several
// thread counts, one token (decode) and many (prefill); embedding rows likewise.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "format/format-test-util.h"
#include "kernels/cpu/for-each-target.h"
#include "kernels/cpu/test-random-blocks.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/cpu.h"
#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg {
namespace {

using format::Encoding;
using format::Layout;

struct Case {
  std::string name;
  Layout layout;
  Encoding enc;
  int n = 0, m = 0;  // N:M only
};

// Owns one compressed matrix and its dense meaning (computed by the test util, not by
// the decoder under test).
struct Built {
  format::CompressedData data;
  format::CompressedMatrix view;
  std::vector<float> dense;  // [rows, cols]
};

Built build(const Case& c, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  Built b;
  std::vector<format::SparseRow> sparse;
  std::vector<float> codebook;
  if (c.layout == Layout::NM) {
    sparse = format::testing::random_nm_rows(rng, rows, cols, c.n, c.m);
    b.data = format::encode_nm(cols, sparse, c.n, c.m);
  } else {
    if (c.enc == Encoding::Codebook) codebook = format::testing::random_codebook(rng, 64);
    sparse = format::testing::random_rows(rng, rows, cols, c.enc, 64);
    // Prime values reach 104729: scale them down to weight-like magnitudes.
    if (c.enc == Encoding::Prime)
      for (auto& r : sparse) r.scale *= 1e-4f;
    b.data = format::encode_mdcsr(cols, sparse, c.enc, codebook);
  }
  b.view = b.data.view();
  format::validate(b.view, c.name);
  b.dense = format::testing::dense_of(sparse, cols, c.enc, codebook);
  return b;
}

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = g(rng);
  return v;
}

// How far the fast kernels may be from the fp32 reference: int8 activations round each
// x to within half a step of its 64-column block (step = block max / 127, so at most
// max|x| / 254), which moves output r by at most sum_c |W[r, c]| * max|x| / 254; fp16
// values (prime, codebook) add 2^-11 of sum |W x|. Float summation order is far below.
double fast_bound(const std::vector<float>& dense, const float* x, int64_t r, int64_t cols) {
  double wsum = 0, wx = 0, xmax = 0;
  for (int64_t c = 0; c < cols; ++c) {
    wsum += std::fabs(dense[size_t(r * cols + c)]);
    wx += std::fabs(double(dense[size_t(r * cols + c)]) * x[c]);
    xmax = std::max(xmax, double(std::fabs(x[c])));
  }
  return wsum * xmax / 254.0 * 1.01 + wx * 1e-3 + 1e-6;
}

class CompressedMatmul : public ::testing::TestWithParam<Case> {};

TEST_P(CompressedMatmul, MatchesReferenceAndDenseForThreadsAndTokens) {
  const Case& c = GetParam();
  const int64_t rows = 45, cols = 640;  // 45 rows split unevenly over 2, 3 and 4 threads
  const Built b = build(c, rows, cols, 7);
  const std::vector<float> bias = random_vec(size_t(rows), 3);
  for (const bool with_bias : {false, true}) {
    for (const int64_t n_tokens : {1, 7}) {
      const std::vector<float> x = random_vec(size_t(n_tokens * cols), 11 + uint32_t(n_tokens));
      std::vector<float> want(size_t(n_tokens * rows));
      format::reference_matmul(b.view, x.data(), n_tokens, want.data(), with_bias ? bias.data() : nullptr);
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          double acc = with_bias ? bias[size_t(r)] : 0.0;
          for (int64_t k = 0; k < cols; ++k)
            acc += double(b.dense[size_t(r * cols + k)]) * double(x[size_t(t * cols + k)]);
          ASSERT_NEAR(want[size_t(t * rows + r)], acc, 1e-4 * (1 + std::fabs(acc)))
              << "reference kernel vs dense, token " << t << " row " << r;
        }
      for (const int threads : {1, 2, 3, 4})
        for (const CpuKernels kernels : {CpuKernels::Reference, CpuKernels::Fast}) {
        SCOPED_TRACE(::testing::Message() << "threads " << threads << ", tokens " << n_tokens << ", bias "
                                          << with_bias << ", fast " << (kernels == CpuKernels::Fast));
        auto be = make_cpu_backend(threads, kernels);
        ASSERT_TRUE(be->supports(c.layout, c.enc));
        LinearWeight w;
        w.rows = rows;
        w.cols = cols;
        w.compressed = &b.view;
        w.bias = with_bias ? bias.data() : nullptr;
        w.name = "w";
        std::vector<float> got(size_t(n_tokens * rows), NAN);
        be->prepare(w);
        be->matmul(w, x.data(), n_tokens, got.data());
        if (kernels == CpuKernels::Reference) {
          for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "output " << i;
        } else {
          for (int64_t t = 0; t < n_tokens; ++t)
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_NEAR(got[size_t(t * rows + r)], want[size_t(t * rows + r)],
                          fast_bound(b.dense, x.data() + t * cols, r, cols))
                  << "token " << t << " row " << r;
        }
      }
    }
  }
}

// Phi-3's fused projections are bound as row slices: a slice through the backend equals
// the same rows of the whole product.
TEST_P(CompressedMatmul, RowSlicesMatchTheWholeMatrix) {
  const Case& c = GetParam();
  const int64_t rows = 48, cols = 512, n_tokens = 3;
  const Built b = build(c, rows, cols, 21);
  const std::vector<float> x = random_vec(size_t(n_tokens * cols), 5);
  std::vector<float> whole(size_t(n_tokens * rows));
  format::reference_matmul(b.view, x.data(), n_tokens, whole.data());
  auto be = make_cpu_backend(3, CpuKernels::Reference);
  // The fast kernels compute each row the same way whatever range it is in: a slice
  // equals the same rows of the whole matrix exactly.
  auto fast = make_cpu_backend(3);
  LinearWeight whole_w;
  whole_w.rows = rows;
  whole_w.cols = cols;
  whole_w.compressed = &b.view;
  std::vector<float> whole_fast(size_t(n_tokens * rows));
  fast->matmul(whole_w, x.data(), n_tokens, whole_fast.data());
  for (const auto& [r0, n] : std::vector<std::pair<int64_t, int64_t>>{{0, 16}, {16, 8}, {24, 24}, {47, 1}}) {
    const format::CompressedMatrix s = format::slice_rows(b.view, r0, n);
    LinearWeight w;
    w.rows = n;
    w.cols = cols;
    w.compressed = &s;
    std::vector<float> got(size_t(n_tokens * n));
    be->matmul(w, x.data(), n_tokens, got.data());
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = 0; r < n; ++r)
        ASSERT_EQ(got[size_t(t * n + r)], whole[size_t(t * rows + r0 + r)]) << "slice " << r0 << " row " << r;
    fast->matmul(w, x.data(), n_tokens, got.data());
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t r = 0; r < n; ++r)
        ASSERT_EQ(got[size_t(t * n + r)], whole_fast[size_t(t * rows + r0 + r)]) << "fast slice " << r0 << " row " << r;
  }
}

TEST_P(CompressedMatmul, EmbedDecodesRows) {
  const Case& c = GetParam();
  const int64_t rows = 20, cols = 512;
  const Built b = build(c, rows, cols, 33);
  auto be = make_cpu_backend(2);
  LinearWeight w;
  w.rows = rows;
  w.cols = cols;
  w.compressed = &b.view;
  const std::vector<int32_t> tokens = {3, 0, 19, 3};
  std::vector<float> out(tokens.size() * size_t(cols));
  be->embed(w, tokens, out.data());
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int64_t k = 0; k < cols; ++k)
      ASSERT_FLOAT_EQ(out[t * size_t(cols) + size_t(k)], b.dense[size_t(tokens[t] * cols + k)]);
  EXPECT_THROW(be->embed(w, std::vector<int32_t>{20}, out.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Layouts, CompressedMatmul,
                         ::testing::Values(Case{"mdcsr_int8", Layout::MdCsr, Encoding::Int8},
                                           Case{"mdcsr_prime", Layout::MdCsr, Encoding::Prime},
                                           Case{"mdcsr_codebook", Layout::MdCsr, Encoding::Codebook},
                                           Case{"nm_2_4", Layout::NM, Encoding::Int8, 2, 4},
                                           Case{"nm_4_8", Layout::NM, Encoding::Int8, 4, 8}),
                         [](const auto& info) { return info.param.name; });

TEST(CompressedSupport, NmIsInt8Only) {
  auto be = make_cpu_backend(1);
  EXPECT_TRUE(be->supports(Layout::MdCsr, Encoding::Prime));
  EXPECT_TRUE(be->supports(Layout::NM, Encoding::Int8));
  EXPECT_FALSE(be->supports(Layout::NM, Encoding::Codebook));
  EXPECT_TRUE(be->supports(Op::Matmul, DType::I8));
  EXPECT_TRUE(be->supports(Op::Embed, DType::I8));
  EXPECT_TRUE(be->supports(Op::Matmul, DType::Q4_0));  // GGUF blocks: the integer kernels
  EXPECT_TRUE(be->supports(Op::Embed, DType::IQ4_XS));
  EXPECT_FALSE(be->supports(Op::Matmul, DType::U16));
}

// Dense int8 with per-row scales: matmul (with a bias, odd column count for the loop
// tail) and embed against the dequantized matrix; matmul in place, then after prepare()
// (which repacks it into DenseRows4 on AVX2).
TEST(DenseInt8, MatmulAndEmbedMatchDequantized) {
  const int64_t rows = 37, cols = 203;
  std::mt19937 rng(9);
  std::vector<int8_t> q(size_t(rows * cols));
  for (auto& v : q) v = int8_t(std::uniform_int_distribution<int>(-127, 127)(rng));
  const std::vector<float> scales = random_vec(size_t(rows), 4), bias = random_vec(size_t(rows), 6);
  LinearWeight w;
  w.dtype = DType::I8;
  w.data = q.data();
  w.rows = rows;
  w.cols = cols;
  w.scales = scales.data();
  w.bias = bias.data();
  for (const int threads : {1, 3})
    for (const CpuKernels kernels : {CpuKernels::Reference, CpuKernels::Fast}) {
    auto be = make_cpu_backend(threads, kernels);
    for (const bool prepared : {false, true})
    for (const int64_t n_tokens : {1, 5}) {
      if (prepared) be->prepare(w);  // once is enough; again finds it packed
      const std::vector<float> x = random_vec(size_t(n_tokens * cols), 8);
      std::vector<float> got(size_t(n_tokens * rows));
      be->matmul(w, x.data(), n_tokens, got.data());
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          double acc = bias[size_t(r)];
          for (int64_t k = 0; k < cols; ++k)
            acc += double(scales[size_t(r)]) * q[size_t(r * cols + k)] * double(x[size_t(t * cols + k)]);
          std::vector<float> row(static_cast<size_t>(cols));
          for (int64_t k = 0; k < cols; ++k) row[size_t(k)] = scales[size_t(r)] * q[size_t(r * cols + k)];
          const double tol = kernels == CpuKernels::Reference ? 1e-4 * (1 + std::fabs(acc))
                                                              : fast_bound(row, x.data() + t * cols, 0, cols);
          ASSERT_NEAR(got[size_t(t * rows + r)], acc, tol) << "token " << t << " row " << r;
        }
    }
    const std::vector<int32_t> tokens = {36, 0, 5};
    std::vector<float> emb(tokens.size() * size_t(cols));
    be->embed(w, tokens, emb.data());
    for (size_t t = 0; t < tokens.size(); ++t)
      for (int64_t k = 0; k < cols; ++k)
        ASSERT_EQ(emb[t * size_t(cols) + size_t(k)], scales[size_t(tokens[t])] * float(q[size_t(tokens[t] * cols + k)]));
  }
  w.scales = nullptr;
  auto be = make_cpu_backend(1);
  std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  EXPECT_THROW(be->matmul(w, x.data(), 1, y.data()), Error);
}

// Weights on one input (q, k, v; gate, up) as one op: every layout, a dense int8 and a
// float weight, biases, uneven row counts over several threads. Each output equals that
// weight's own matmul bit for bit, on every SIMD target: the kernels compute a row the
// same way in whatever range, and the input is quantized the same way once as every time.
TEST(MatmulSameInput, EqualsOneMatmulPerWeight) {
  const int64_t cols = 640;
  const Case cases[] = {{"mdcsr_int8", Layout::MdCsr, Encoding::Int8},
                        {"mdcsr_prime", Layout::MdCsr, Encoding::Prime},
                        {"nm_2_4", Layout::NM, Encoding::Int8, 2, 4},
                        {"mdcsr_codebook", Layout::MdCsr, Encoding::Codebook},
                        {"nm_4_8", Layout::NM, Encoding::Int8, 4, 8}};
  const int64_t rows[] = {45, 13, 64, 7, 30};
  std::vector<Built> built;
  for (size_t i = 0; i < std::size(cases); ++i) built.push_back(build(cases[i], rows[i], cols, 40 + uint32_t(i)));
  const std::vector<float> bias = random_vec(64, 12);
  std::vector<LinearWeight> ws(std::size(cases) + 2);
  for (size_t i = 0; i < std::size(cases); ++i) {
    ws[i].rows = rows[i];
    ws[i].cols = cols;
    ws[i].compressed = &built[i].view;
    ws[i].bias = i % 2 ? bias.data() : nullptr;
    ws[i].name = cases[i].name.c_str();
  }
  std::mt19937 rng(5);
  std::vector<int8_t> q(size_t(19 * cols));
  for (auto& v : q) v = int8_t(std::uniform_int_distribution<int>(-127, 127)(rng));
  const std::vector<float> scales = random_vec(19, 13), f32 = random_vec(size_t(11 * cols), 14);
  LinearWeight& i8 = ws[std::size(cases)];
  i8.dtype = DType::I8;
  i8.data = q.data();
  i8.rows = 19;
  i8.cols = cols;
  i8.scales = scales.data();
  i8.bias = bias.data();
  i8.name = "dense_int8";
  LinearWeight& f = ws[std::size(cases) + 1];
  f.dtype = DType::F32;
  f.data = f32.data();
  f.rows = 11;
  f.cols = cols;
  f.name = "dense_f32";
  // Every SIMD target: each has its own execution forms (16-row tiles on AVX-512).
  kernels::testing::for_each_target([&](const std::string&) {
    for (const int threads : {1, 2, 3})
      for (const CpuKernels kernels : {CpuKernels::Fast, CpuKernels::Reference})
        for (const int64_t n_tokens : {1, 7})
          // All int8 and compressed (one shared region), then with the float weight too.
          for (const size_t n_weights : {ws.size() - 1, ws.size()}) {
            SCOPED_TRACE(::testing::Message() << "threads " << threads << ", tokens " << n_tokens << ", weights "
                                              << n_weights << ", fast " << (kernels == CpuKernels::Fast));
            auto be = make_cpu_backend(threads, kernels);
            std::vector<const LinearWeight*> group;
            for (size_t i = 0; i < n_weights; ++i) group.push_back(&ws[i]);
            be->prepare(group);
            const std::vector<float> x = random_vec(size_t(n_tokens * cols), 15);
            std::vector<std::vector<float>> got(n_weights), want(n_weights);
            std::vector<float*> ys;
            for (size_t i = 0; i < n_weights; ++i) {
              got[i].assign(size_t(n_tokens * ws[i].rows), NAN);
              want[i].assign(got[i].size(), NAN);
              ys.push_back(got[i].data());
              be->matmul(ws[i], x.data(), n_tokens, want[i].data());
            }
            be->matmul_same_input(group, x.data(), n_tokens, ys);
            for (size_t i = 0; i < n_weights; ++i)
              for (size_t k = 0; k < got[i].size(); ++k) ASSERT_EQ(got[i][k], want[i][k]) << ws[i].name << " output " << k;
          }
  });
  // Weights on one input must have its columns.
  auto be = make_cpu_backend(2);
  LinearWeight narrow = i8;
  narrow.cols = cols - 1;
  const std::vector<const LinearWeight*> bad = {&i8, &narrow};
  std::vector<float> x(static_cast<size_t>(cols)), y0(19), y1(19);
  const std::vector<float*> ys = {y0.data(), y1.data()};
  EXPECT_THROW(be->matmul_same_input(bad, x.data(), 1, ys), Error);
}

// Backend::set_decode_rows: a token's output depends on its class alone. In a call of 40
// tokens whose first d are of the decode class, every token equals, bit for bit, itself
// run alone in its class: every compressed layout, dense int8 and every GGUF block type,
// on every SIMD target (without classes a call of 40 runs the GEMM and one the tiles).
TEST(BatchInvariance, EveryTokenEqualsItselfAloneInItsClass) {
  const int64_t cols = 768, n_tokens = 40;  // whole K-quant super-blocks
  const Case cases[] = {{"mdcsr_int8", Layout::MdCsr, Encoding::Int8},
                        {"mdcsr_prime", Layout::MdCsr, Encoding::Prime},
                        {"mdcsr_codebook", Layout::MdCsr, Encoding::Codebook},
                        {"nm_2_4", Layout::NM, Encoding::Int8, 2, 4},
                        {"nm_4_8", Layout::NM, Encoding::Int8, 4, 8}};
  std::vector<Built> built;
  std::vector<LinearWeight> ws;
  for (size_t i = 0; i < std::size(cases); ++i) built.push_back(build(cases[i], 37, cols, 60 + uint32_t(i)));
  for (size_t i = 0; i < std::size(cases); ++i) {
    LinearWeight w;
    w.rows = 37;
    w.cols = cols;
    w.compressed = &built[i].view;
    w.name = cases[i].name.c_str();
    ws.push_back(w);
  }
  std::mt19937 rng(21);
  std::vector<int8_t> q(size_t(19 * cols));
  for (auto& v : q) v = int8_t(std::uniform_int_distribution<int>(-127, 127)(rng));
  const std::vector<float> scales = random_vec(19, 22);
  LinearWeight i8;
  i8.dtype = DType::I8;
  i8.data = q.data();
  i8.rows = 19;
  i8.cols = cols;
  i8.scales = scales.data();
  i8.name = "dense_int8";
  ws.push_back(i8);
  std::vector<std::vector<std::byte>> blocks;
  for (const kernels::ScaleAt& t : kernels::kTypes) blocks.push_back(kernels::random_blocks(t, 21, cols, rng, false));
  for (size_t i = 0; i < std::size(kernels::kTypes); ++i) {
    LinearWeight w;
    w.dtype = kernels::kTypes[i].type;
    w.data = blocks[i].data();
    w.rows = 21;
    w.cols = cols;
    w.name = "gguf";
    ws.push_back(w);
  }
  const std::vector<float> x = random_vec(size_t(n_tokens * cols), 23);
  kernels::testing::for_each_target([&](const std::string&) {
    auto be = make_cpu_backend(2, CpuKernels::Fast);
    ASSERT_TRUE(be->batch_invariant());
    for (const LinearWeight& w : ws) {
      SCOPED_TRACE(::testing::Message() << w.name << " " << dtype_name(w.dtype));
      std::vector<float> all(size_t(n_tokens * w.rows)), one(size_t(w.rows));
      for (const int64_t d : {int64_t(0), int64_t(13), n_tokens}) {
        be->set_decode_rows(d);
        be->matmul(w, x.data(), n_tokens, all.data());
        for (int64_t t = 0; t < n_tokens; ++t) {
          be->set_decode_rows(t < d ? 1 : 0);
          be->matmul(w, x.data() + t * cols, 1, one.data());
          for (int64_t r = 0; r < w.rows; ++r)
            ASSERT_EQ(all[size_t(t * w.rows + r)], one[size_t(r)]) << "decode rows " << d << ", token " << t << ", row " << r;
        }
      }
      be->set_decode_rows(-1);
    }
  });
}

// The elementwise ops split a prompt's tokens over the threads: every output equals the
// one-thread result bit for bit, and a cache filled by one multi-token kv_store attends
// exactly as one filled a token at a time.
TEST(ElementwiseOps, SplitOverThreadsEqualsOneThread) {
  const int64_t n = 200, dim = 576, inter = 1536;
  const int heads = 9, kv_heads = 3, hd = 64;
  auto one = make_cpu_backend(1), three = make_cpu_backend(3);
  const std::vector<float> x = random_vec(size_t(n * inter), 21), g = random_vec(size_t(n * inter), 22),
                           w = random_vec(size_t(dim), 23);
  auto both = [&](auto&& op) {
    std::vector<float> a = x, b = x;
    op(*one, a);
    op(*three, b);
    ASSERT_EQ(a, b);
  };
  both([&](Backend& be, std::vector<float>& y) { be.rmsnorm(x.data(), w.data(), y.data(), dim, n, 1e-5f); });
  both([&](Backend& be, std::vector<float>& y) { be.silu_mul(g.data(), x.data(), y.data(), n * inter); });
  both([&](Backend& be, std::vector<float>& y) { be.add(y.data(), g.data(), n * inter); });
  std::vector<float> cos(size_t(n * hd / 2)), sin(cos.size());
  for (size_t i = 0; i < cos.size(); ++i) {
    cos[i] = std::cos(0.01f * float(i));
    sin[i] = std::sin(0.01f * float(i));
  }
  const RopeTable rope{hd, hd, int(n), cos.data(), sin.data()};
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) pos[size_t(t)] = int32_t(t);
  both([&](Backend& be, std::vector<float>& y) { be.rope(y.data(), pos, heads, rope); });

  const std::vector<float> k = random_vec(size_t(n * kv_heads * hd), 24), v = random_vec(k.size(), 25),
                           q = random_vec(size_t(heads * hd), 26);
  std::vector<int64_t> slots(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) slots[size_t(t)] = t;
  auto whole = make_cpu_backend(3), by_token = make_cpu_backend(3);
  for (Backend* be : {whole.get(), by_token.get()}) be->kv_alloc(1, 1, int(n), kv_heads, hd, DType::F16);
  whole->kv_store(0, slots, k.data(), v.data());
  for (int64_t t = 0; t < n; ++t)
    by_token->kv_store(0, std::span<const int64_t>(&slots[size_t(t)], 1), k.data() + t * kv_heads * hd,
                       v.data() + t * kv_heads * hd);
  const int32_t last = int32_t(n - 1);
  const int32_t table = 0, begin = 0;
  const AttentionBatch ab{std::span<const int32_t>(&last, 1), std::span<const int32_t>(&table, 1),
                          std::span<const int32_t>(&begin, 1), int(n), heads, kv_heads, hd};
  std::vector<float> out_whole(size_t(heads * hd)), out_tokens(out_whole.size());
  whole->attention(0, q.data(), ab, out_whole.data());
  by_token->attention(0, q.data(), ab, out_tokens.data());
  EXPECT_EQ(out_whole, out_tokens);
}

// Copy-on-write: a copied block attends exactly as its source, in every layer and for
// every cache type (the int8 scales travel with the rows); bad block ids are errors.
TEST(KvCache, CopiedBlockAttendsAsItsSource) {
  const int heads = 4, kv_heads = 2, hd = 16, B = 8, layers = 2;
  const std::vector<float> k = random_vec(size_t(B * kv_heads * hd), 31), v = random_vec(k.size(), 32),
                           q = random_vec(size_t(heads * hd), 33);
  for (DType type : {DType::F32, DType::F16, DType::I8}) {
    auto be = make_cpu_backend(2);
    be->kv_alloc(layers, 4, B, kv_heads, hd, type);
    std::vector<int64_t> slots;
    for (int t = 0; t < B; ++t) slots.push_back(1 * B + t);
    for (int l = 0; l < layers; ++l) be->kv_store(l, slots, k.data(), v.data());
    const std::vector<BlockCopy> copies = {{1, 3}};
    be->kv_copy_blocks(copies);
    const int32_t last = B - 1, begin = 0;
    for (int l = 0; l < layers; ++l) {
      std::vector<float> from_src(q.size()), from_copy(q.size());
      for (int32_t block : {1, 3}) {
        const AttentionBatch ab{std::span<const int32_t>(&last, 1), std::span<const int32_t>(&block, 1),
                                std::span<const int32_t>(&begin, 1), B, heads, kv_heads, hd};
        be->attention(l, q.data(), ab, block == 1 ? from_src.data() : from_copy.data());
      }
      EXPECT_EQ(from_src, from_copy) << dtype_name(type) << " layer " << l;
    }
    const std::vector<BlockCopy> bad = {{1, 4}};
    EXPECT_THROW(be->kv_copy_blocks(bad), Error);
  }
}

}  // namespace
}  // namespace upg
