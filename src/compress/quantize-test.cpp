#include "compress/quantize.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "upg/core/error.h"
#include "upg/core/tensor.h"
#include "upg/format/primes.h"

namespace upg::compress {
namespace {

using format::Encoding;

std::vector<float> heavy_tailed(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> d(3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = 0.02f * d(rng);
  return v;
}

double sq_error(std::span<const float> v, Encoding enc, const std::vector<int32_t>& codes, float scale,
                std::span<const float> cb = {}) {
  double e = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double d = double(v[i]) - dequantize(enc, codes[i], scale, cb);
    e += d * d;
  }
  return e;
}

TEST(Quantize, Int8AbsmaxErrorWithinHalfStep) {
  auto v = heavy_tailed(1000, 1);
  std::vector<int32_t> codes;
  const float scale = quantize_int8(v, QuantMethod::Absmax, codes);
  float amax = 0;
  for (float x : v) amax = std::max(amax, std::fabs(x));
  EXPECT_FLOAT_EQ(scale, amax / 127.0f);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_LE(std::abs(codes[i]), 127);
    EXPECT_LE(std::fabs(v[i] - dequantize(Encoding::Int8, codes[i], scale, {})), scale / 2 * (1 + 1e-5f)) << i;
  }
}

TEST(Quantize, ClipNeverWorseThanAbsmaxAndHelpsHeavyTails) {
  double total_abs = 0, total_clip = 0;
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto v = heavy_tailed(1536, seed);
    std::vector<int32_t> ca, cc;
    const float sa = quantize_int8(v, QuantMethod::Absmax, ca);
    const float sc = quantize_int8(v, QuantMethod::Clip, cc);
    const double ea = sq_error(v, Encoding::Int8, ca, sa), ec = sq_error(v, Encoding::Int8, cc, sc);
    EXPECT_LE(ec, ea);
    total_abs += ea, total_clip += ec;
  }
  EXPECT_LT(total_clip, 0.995 * total_abs) << total_clip / total_abs;  // small but real: why clip is the default
}

TEST(Quantize, ZeroRowAndNonFinite) {
  std::vector<float> z(5, 0.0f);
  std::vector<int32_t> codes;
  EXPECT_EQ(quantize_int8(z, QuantMethod::Clip, codes), 0.0f);
  EXPECT_EQ(codes, std::vector<int32_t>(5, 0));
  std::vector<float> bad = {1.0f, NAN};
  EXPECT_THROW(quantize_int8(bad, QuantMethod::Absmax, codes), Error);
}

TEST(Quantize, PrimeRoundTrip) {
  auto v = heavy_tailed(2000, 7);
  for (int k : {1, 2, 127, 10000}) {
    std::vector<int32_t> codes;
    const float scale = quantize_prime(v, k, QuantMethod::Absmax, codes);
    float amax = 0;
    for (float x : v) amax = std::max(amax, std::fabs(x));
    EXPECT_FLOAT_EQ(scale, amax / float(nth_prime(k)));
    for (size_t i = 0; i < v.size(); ++i) {
      const int idx = codes[i] & format::kPrimeIndexMask;
      ASSERT_LE(idx, k);
      ASSERT_EQ(codes[i] & ~0xffff, 0);
      if (idx == 0) {
        ASSERT_EQ(codes[i], 0);  // no negative zero
      }
      // The nearest of {0, the first k primes} (ties to the lower), by brute force.
      const float mag = std::fabs(v[i]) / scale;
      int best = 0;
      float best_d = mag;
      for (int j = 1; j <= k; ++j)
        if (std::fabs(mag - float(nth_prime(j))) < best_d) best = j, best_d = std::fabs(mag - float(nth_prime(j)));
      ASSERT_EQ(idx, best) << i << " k " << k;
      if (idx) {
        EXPECT_EQ((codes[i] & format::kPrimeSignBit) != 0, v[i] < 0);
      }
    }
  }
  // More primes, finer steps.
  std::vector<int32_t> c127, c10k;
  const float s127 = quantize_prime(v, 127, QuantMethod::Absmax, c127);
  const float s10k = quantize_prime(v, 10000, QuantMethod::Absmax, c10k);
  EXPECT_LT(sq_error(v, Encoding::Prime, c10k, s10k), sq_error(v, Encoding::Prime, c127, s127));
  std::vector<int32_t> cc;
  const float sc = quantize_prime(v, 127, QuantMethod::Clip, cc);
  EXPECT_LE(sq_error(v, Encoding::Prime, cc, sc), sq_error(v, Encoding::Prime, c127, s127));
}

TEST(Quantize, PrimeSmallValuesGoToZero) {
  const std::vector<float> v = {10.0f, 0.05f, -0.1f, 0.2f, -10.0f};  // scale 10/5 = 2 for K = 3
  std::vector<int32_t> codes;
  const float scale = quantize_prime(v, 3, QuantMethod::Absmax, codes);
  EXPECT_FLOAT_EQ(scale, 2.0f);
  EXPECT_EQ(codes[0], 3);
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(codes[2], 0);
  EXPECT_EQ(codes[4], 3 | format::kPrimeSignBit);
}

TEST(Quantize, CodebookTrainAndRoundTrip) {
  auto v = heavy_tailed(4000, 9);
  float amax = 0;
  for (float x : v) amax = std::max(amax, std::fabs(x));
  std::vector<float> norm;
  for (float x : v) norm.push_back(x / amax);
  for (int k : {2, 16, 256}) {
    auto cb = train_codebook(norm, k, 42);
    ASSERT_EQ(cb.size(), size_t(k));
    EXPECT_EQ(cb[0], 0.0f);
    EXPECT_TRUE(std::is_sorted(cb.begin() + 1, cb.end()));
    EXPECT_EQ(train_codebook(norm, k, 42), cb);  // deterministic
    std::vector<int32_t> codes;
    const float scale = quantize_codebook(v, cb, codes);
    EXPECT_FLOAT_EQ(scale, amax);
    for (size_t i = 0; i < v.size(); ++i) {
      ASSERT_GE(codes[i], 0);
      ASSERT_LT(codes[i], k);
      // Nearest entry: no other entry is closer.
      const float x = v[i] / scale, d = std::fabs(x - cb[size_t(codes[i])]);
      for (float c : cb) ASSERT_LE(d, std::fabs(x - c) + 1e-7f);
    }
    if (k == 256) {
      EXPECT_LT(std::sqrt(sq_error(v, Encoding::Codebook, codes, scale, cb) / double(v.size())), 0.01 * amax);
    }
  }
  // Subsampled training still yields a usable, deterministic table.
  auto sub = train_codebook(norm, 16, 5, 8, 500);
  EXPECT_EQ(sub, train_codebook(norm, 16, 5, 8, 500));
  EXPECT_THROW(train_codebook(norm, 1, 0), Error);
}

TEST(Quantize, ParseValues) {
  EXPECT_EQ(parse_values("int8").encoding, Encoding::Int8);
  EXPECT_EQ(parse_values("prime:127").k, 127);
  EXPECT_EQ(parse_values("codebook:65536").k, 65536);
  for (const char* bad : {"prime", "prime:0", "prime:10001", "codebook:1", "codebook:65537", "int4:8", "int1", "prime:1x"})
    EXPECT_THROW(parse_values(bad), Error) << bad;
  EXPECT_EQ(parse_values("prime:10000").name(), "prime:10000");
  EXPECT_EQ(parse_values("int4").encoding, Encoding::Int4);
  EXPECT_EQ(parse_values("int4").name(), "int4");
  EXPECT_EQ(parse_values("int3").encoding, Encoding::Int3);
  EXPECT_EQ(parse_values("int2").name(), "int2");
  EXPECT_EQ(parse_values("int2").bits(), 2);
  EXPECT_THROW(parse_quant_method("max"), Error);
}

// The grouped grids (docs/FORMAT.md 4.3): symmetric groups use levels -Z..Z-1 around
// zero Z = 2^(bits-1) (-8..7 for int4), asymmetric ones span [min(v, 0), max(v, 0)]; every
// value lands within half a step (absmax), clipping never raises the squared error, and
// 0 stays exactly 0.
TEST(Quantize, GroupedGrids) {
  std::mt19937 rng(21);
  std::normal_distribution<float> g(0.0f, 0.02f);
  for (int bits : {4, 3, 2})
  for (int trial = 0; trial < 200; ++trial) {
    SCOPED_TRACE(bits);
    const int top = (1 << bits) - 1, half = 1 << (bits - 1);
    std::vector<float> v(size_t(trial % 3 == 0 ? 32 : trial % 3 == 1 ? 64 : 17));
    for (float& x : v) x = g(rng) + (trial % 5 == 0 ? 0.01f : 0.0f);  // some groups all one sign
    v[3] = 0.0f;
    for (bool zp : {false, true}) {
      const Int4Group a = int4_group(v, zp, QuantMethod::Absmax, bits),
                      c = int4_group(v, zp, QuantMethod::Clip, bits);
      if (!zp) {
        EXPECT_EQ(a.zero, half);
      }
      EXPECT_EQ(a.bits, bits);
      EXPECT_GE(a.zero, 0);
      EXPECT_LE(a.zero, top);
      double ea = 0, ec = 0;
      for (float x : v) {
        const int qa = int4_code(x, a), qc = int4_code(x, c);
        ASSERT_GE(qa, 0);
        ASSERT_LE(qa, top);
        const float da = int4_dequantize(qa, a);
        // With a zero point the range maps onto 0..top exactly (fp16 rounding of the step,
        // 2^-11 relative, can put an extreme a hair outside); symmetric absmax may clip
        // the extreme of the other sign (-8 reaches one step further than 7), checked
        // against the plain grid below.
        if (zp) {
          EXPECT_LE(std::fabs(x - da), 0.5f * a.step() * 1.01f) << x;
        }
        ea += double(x - da) * double(x - da);
        ec += double(x - int4_dequantize(qc, c)) * double(x - int4_dequantize(qc, c));
      }
      EXPECT_LE(ec, ea * (1 + 1e-9)) << "clip worse than absmax";
      if (zp) {  // clip keeps the ratio of least error through int4_code and int4_dequantize
        float lo = 0, hi = 0;
        for (float x : v) lo = std::min(lo, x), hi = std::max(hi, x);
        double best = INFINITY;
        Int4Group want;
        for (float r : grouped_clip_ratios(bits)) {
          const float scale = (hi - lo) * r / float(top);
          const Int4Group cand{fp32_to_fp16(scale), int(std::clamp(std::nearbyint(-lo * r / scale), 0.0f, float(top))),
                               bits};
          double e = 0;
          for (float x : v) e += std::pow(double(x) - double(int4_dequantize(int4_code(x, cand), cand)), 2);
          if (e < best) best = e, want = cand;
        }
        EXPECT_EQ(c.scale, want.scale);
        EXPECT_EQ(c.zero, want.zero);
      }
      if (!zp) {  // no worse than the plain symmetric grid, step max |v| / (Z - 1)
        float amax = 0;
        for (float x : v) amax = std::max(amax, std::fabs(x));
        const Int4Group plain{fp32_to_fp16(amax / float(half - 1)), half, bits};
        double ep = 0;
        for (float x : v) {
          const double d = double(x) - double(int4_dequantize(int4_code(x, plain), plain));
          ep += d * d;
        }
        EXPECT_LE(ea, ep * (1 + 1e-9));
      }
      EXPECT_EQ(int4_dequantize(int4_code(0.0f, a), a), 0.0f);
      EXPECT_EQ(int4_dequantize(int4_code(0.0f, c), c), 0.0f);
    }
  }
  // All-zero group: scale 0, every code its zero.
  const std::vector<float> zeros(32, 0.0f);
  const Int4Group z = int4_group(zeros, true, QuantMethod::Clip);
  EXPECT_EQ(z.step(), 0.0f);
  EXPECT_EQ(int4_dequantize(int4_code(0.0f, z), z), 0.0f);
  const std::vector<float> nan = {1.0f, NAN};
  EXPECT_THROW(int4_group(nan, false, QuantMethod::Clip), Error);
}

}  // namespace
}  // namespace upg::compress
