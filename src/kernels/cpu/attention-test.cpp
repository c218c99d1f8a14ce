// The chunked attention against a plain one in doubles: GQA groups, several sequences,
// prefill rows and single decode tokens (split into chunks and merged), sliding windows,
// every thread count from 1 to 3 and every SIMD target, over f16 and int8 caches.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/for-each-target.h"
#include "upg/core/tensor.h"

namespace upg::kernels {
namespace {

struct Case {
  int n_heads, n_kv_heads, head_dim, window;
  std::vector<int32_t> positions;
  std::vector<int64_t> kv_base;
};

// K and V head-major [n_kv_heads, slots, head_dim], as the CPU backend keeps them (in f16).
std::vector<double> plain(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                          const std::vector<float>& v, int64_t slots) {
  const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  std::vector<double> out(c.positions.size() * size_t(c.n_heads * hd));
  for (size_t t = 0; t < c.positions.size(); ++t)
    for (int h = 0; h < c.n_heads; ++h) {
      const int g = h / group, pos = c.positions[t];
      const int start = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
      std::vector<double> s;
      for (int p = start; p <= pos; ++p) {
        const size_t row = (size_t(g) * size_t(slots) + size_t(c.kv_base[t] + p)) * size_t(hd);
        double d = 0;
        for (int i = 0; i < hd; ++i) d += double(q[(t * size_t(c.n_heads) + size_t(h)) * size_t(hd) + size_t(i)]) * k[row + size_t(i)];
        s.push_back(d / std::sqrt(double(hd)));
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int p = start; p <= pos; ++p) {
        const size_t row = (size_t(g) * size_t(slots) + size_t(c.kv_base[t] + p)) * size_t(hd);
        for (int i = 0; i < hd; ++i)
          out[(t * size_t(c.n_heads) + size_t(h)) * size_t(hd) + size_t(i)] += s[size_t(p - start)] / sum * v[row + size_t(i)];
      }
    }
  return out;
}

// The cache holds f16 or int8 (one scale per head and position): the plain attention
// gets the same rounded values, so only the order of operations differs.
void check_cache(const Case& c, DType cache) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t slots = 1200;
  auto fill = [&](size_t n) {
    std::vector<float> x(n);
    for (float& f : x) f = dist(rng);
    return x;
  };
  const auto q = fill(c.positions.size() * size_t(c.n_heads * c.head_dim));
  auto k = fill(size_t(c.n_kv_heads * slots * c.head_dim)), v = fill(k.size());
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  std::vector<int8_t> k8(k.size()), v8(v.size());
  const size_t rows = k.size() / size_t(c.head_dim);
  std::vector<float> ks(rows), vs(rows);
  if (cache == DType::F16) {
    for (size_t i = 0; i < k.size(); ++i) {
      k16[i] = fp32_to_fp16(k[i]);
      v16[i] = fp32_to_fp16(v[i]);
      k[i] = fp16_to_fp32(k16[i]);
      v[i] = fp16_to_fp32(v16[i]);
    }
  } else {
    const size_t hd = size_t(c.head_dim);
    for (size_t r = 0; r < rows; ++r) {
      ks[r] = quantize_i8(k.data() + r * hd, int64_t(hd), k8.data() + r * hd);
      vs[r] = quantize_i8(v.data() + r * hd, int64_t(hd), v8.data() + r * hd);
      for (size_t i = r * hd; i < (r + 1) * hd; ++i) {
        ASSERT_NEAR(k[i], ks[r] * k8[i], 0.5f * ks[r] + 1e-6f);
        k[i] = ks[r] * k8[i];
        v[i] = vs[r] * v8[i];
      }
    }
  }
  const std::vector<double> want = plain(c, q, k, v, slots);
  const AttentionBatch b{c.positions, c.kv_base, c.n_heads, c.n_kv_heads, c.head_dim, c.window};
  testing::for_each_target([&](const std::string&) {
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << threads << " threads, cache " << dtype_name(cache));
      ThreadPool pool(threads);
      Attention att(pool);
      std::vector<float> out(want.size(), NAN);
      if (cache == DType::F16) att.run(q.data(), b, KvLayer<uint16_t>{k16.data(), v16.data()}, slots, out.data());
      else att.run(q.data(), b, KvLayer<int8_t>{k8.data(), v8.data(), ks.data(), vs.data()}, slots, out.data());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(out[i], want[i], 1e-4) << "at " << i;
    }
  });
}

void check(const Case& c) {
  check_cache(c, DType::F16);
  check_cache(c, DType::I8);
}

TEST(Attention, DecodeTokenLongRowIsChunkedAndMerged) {
  check({9, 3, 64, 0, {700}, {0}});
  check({4, 1, 80, 0, {1000}, {100}});
}

TEST(Attention, PrefillRowsOfTwoSequences) {
  Case c{6, 2, 32, 0, {}, {}};
  for (int p = 0; p < 40; ++p) c.positions.push_back(p), c.kv_base.push_back(0);
  for (int p = 0; p < 25; ++p) c.positions.push_back(p), c.kv_base.push_back(600);
  check(c);
}

TEST(Attention, SlidingWindowAndFirstPosition) {
  check({4, 2, 16, 50, {0, 1, 49, 50, 51, 400}, {0, 0, 0, 0, 0, 0}});
  check({4, 2, 16, 64, {900}, {0}});
  check({2, 2, 8, 0, {0}, {0}});
}

}  // namespace
}  // namespace upg::kernels
