// The chunked attention against a plain one in doubles: GQA groups, several sequences,
// prefill rows and single decode tokens (split into chunks and merged), sliding windows,
// every thread count from 1 to 3 and every SIMD target, over f16 and int8 caches, read
// through block tables that are contiguous or shuffled, with blocks of 16 or 5 slots.
#include <gtest/gtest.h>

#include <algorithm>
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
  std::vector<int32_t> seqs;  // the sequence of each token
};

// The block tables of a case's sequences, one after another, and where each token's
// starts: contiguous from `first` (as Model lays out sequences by default), or a random
// choice of distinct blocks in random order (as a KV manager's pool ends up).
struct Tables {
  int block_size;
  std::vector<int32_t> ids, begin;
  int64_t slot(size_t t, int p) const {
    return int64_t(ids[size_t(begin[t] + p / block_size)]) * block_size + p % block_size;
  }
};

Tables make_tables(const Case& c, int block_size, int64_t slots, bool shuffled, int first) {
  const int n_seqs = *std::max_element(c.seqs.begin(), c.seqs.end()) + 1;
  std::vector<int> blocks(size_t(n_seqs), 0);
  for (size_t t = 0; t < c.positions.size(); ++t)
    blocks[size_t(c.seqs[t])] = std::max(blocks[size_t(c.seqs[t])], c.positions[t] / block_size + 1);
  std::vector<int32_t> pool(size_t(slots / block_size));
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = int32_t((i + size_t(first)) % pool.size());
  if (shuffled) std::shuffle(pool.begin(), pool.end(), std::mt19937(7));
  Tables tb{block_size, {}, {}};
  std::vector<int32_t> seq_begin;
  for (int s = 0; s < n_seqs; ++s) {
    seq_begin.push_back(int32_t(tb.ids.size()));
    for (int i = 0; i < blocks[size_t(s)]; ++i) tb.ids.push_back(pool.at(tb.ids.size()));
  }
  for (int32_t s : c.seqs) tb.begin.push_back(seq_begin[size_t(s)]);
  return tb;
}

// K and V head-major [n_kv_heads, slots, head_dim], as the CPU backend keeps them (in f16).
std::vector<double> plain(const Case& c, const Tables& tb, const std::vector<float>& q, const std::vector<float>& k,
                          const std::vector<float>& v, int64_t slots) {
  const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  std::vector<double> out(c.positions.size() * size_t(c.n_heads * hd));
  for (size_t t = 0; t < c.positions.size(); ++t)
    for (int h = 0; h < c.n_heads; ++h) {
      const int g = h / group, pos = c.positions[t];
      const int start = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
      std::vector<double> s;
      for (int p = start; p <= pos; ++p) {
        const size_t row = (size_t(g) * size_t(slots) + size_t(tb.slot(t, p))) * size_t(hd);
        double d = 0;
        for (int i = 0; i < hd; ++i) d += double(q[(t * size_t(c.n_heads) + size_t(h)) * size_t(hd) + size_t(i)]) * k[row + size_t(i)];
        s.push_back(d / std::sqrt(double(hd)));
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int p = start; p <= pos; ++p) {
        const size_t row = (size_t(g) * size_t(slots) + size_t(tb.slot(t, p))) * size_t(hd);
        for (int i = 0; i < hd; ++i)
          out[(t * size_t(c.n_heads) + size_t(h)) * size_t(hd) + size_t(i)] += s[size_t(p - start)] / sum * v[row + size_t(i)];
      }
    }
  return out;
}

// The cache holds f16 or int8 (one scale per head and position): the plain attention
// gets the same rounded values, so only the order of operations differs.
void check_cache(const Case& c, const Tables& tb, DType cache) {
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
  const std::vector<double> want = plain(c, tb, q, k, v, slots);
  const AttentionBatch b{c.positions, tb.ids, tb.begin, tb.block_size, c.n_heads, c.n_kv_heads, c.head_dim, c.window};
  testing::for_each_target([&](const std::string&) {
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(::testing::Message() << threads << " threads, cache " << dtype_name(cache) << ", blocks of "
                                         << tb.block_size);
      ThreadPool pool(threads);
      Attention att(pool);
      std::vector<float> out(want.size(), NAN);
      if (cache == DType::F16) att.run(q.data(), b, KvLayer<uint16_t>{k16.data(), v16.data()}, slots, out.data());
      else att.run(q.data(), b, KvLayer<int8_t>{k8.data(), v8.data(), ks.data(), vs.data()}, slots, out.data());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(out[i], want[i], 1e-4) << "at " << i;
    }
  });
}

// The cache has 1200 slots; `first` is the first block of the contiguous layout.
void check(const Case& c, int first = 0) {
  for (int block_size : {16, 5})
    for (bool shuffled : {false, true}) {
      const Tables tb = make_tables(c, block_size, 1200, shuffled, first);
      check_cache(c, tb, DType::F16);
      check_cache(c, tb, DType::I8);
    }
}

TEST(Attention, DecodeTokenLongRowIsChunkedAndMerged) {
  check({9, 3, 64, 0, {700}, {0}});
  check({4, 1, 80, 0, {1000}, {0}}, 7);
}

TEST(Attention, PrefillRowsOfTwoSequences) {
  Case c{6, 2, 32, 0, {}, {}};
  for (int p = 0; p < 40; ++p) c.positions.push_back(p), c.seqs.push_back(0);
  for (int p = 0; p < 25; ++p) c.positions.push_back(p), c.seqs.push_back(1);
  check(c, 3);
}

TEST(Attention, SlidingWindowAndFirstPosition) {
  check({4, 2, 16, 50, {0, 1, 49, 50, 51, 400}, {0, 0, 0, 0, 0, 0}});
  check({4, 2, 16, 64, {900}, {0}});
  check({2, 2, 8, 0, {0}, {0}});
}

}  // namespace
}  // namespace upg::kernels
