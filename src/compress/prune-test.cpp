#include "compress/prune.h"

#include <random>

#include <gtest/gtest.h>

#include "upg/core/error.h"

namespace upg::compress {
namespace {

std::vector<float> random_row(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Prune, UnstructuredKeepsExactCountPerRow) {
  for (size_t cols : {1u, 7u, 64u, 100u, 333u})
    for (double s : {0.0, 0.3, 0.5, 0.7, 0.99}) {
      auto w = random_row(cols, uint32_t(cols));
      std::vector<uint32_t> kept;
      select_row(w, {}, Pattern{}, s, kept);
      EXPECT_EQ(int64_t(kept.size()), int64_t(cols) - std::llround(s * double(cols))) << cols << " " << s;
      EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
      EXPECT_EQ(std::adjacent_find(kept.begin(), kept.end()), kept.end());
      // Every kept weight is at least as large as every pruned one.
      float min_kept = INFINITY, max_pruned = 0;
      std::vector<bool> is_kept(cols);
      for (uint32_t c : kept) is_kept[c] = true, min_kept = std::min(min_kept, std::fabs(w[c]));
      for (size_t c = 0; c < cols; ++c)
        if (!is_kept[c]) max_pruned = std::max(max_pruned, std::fabs(w[c]));
      if (!kept.empty() && kept.size() < cols) {
        EXPECT_GE(min_kept, max_pruned);
      }
    }
}

TEST(Prune, NMKeepsNPerGroup) {
  for (Pattern p : {Pattern{2, 4}, Pattern{4, 8}, Pattern{1, 4}}) {
    auto w = random_row(64, 3);
    std::vector<uint32_t> kept;
    select_row(w, {}, p, 0.123, kept);  // sparsity is ignored for N:M
    ASSERT_EQ(kept.size(), size_t(64 / p.m * p.n));
    for (size_t g = 0; g < 64; g += size_t(p.m)) {
      int in_group = 0;
      float min_kept = INFINITY, max_pruned = 0;
      for (size_t c = g; c < g + size_t(p.m); ++c) {
        const bool k = std::find(kept.begin(), kept.end(), uint32_t(c)) != kept.end();
        in_group += k;
        if (k) min_kept = std::min(min_kept, std::fabs(w[c]));
        else max_pruned = std::max(max_pruned, std::fabs(w[c]));
      }
      EXPECT_EQ(in_group, p.n);
      EXPECT_GE(min_kept, max_pruned);
    }
  }
}

TEST(Prune, NMRejectsPartialGroup) {
  std::vector<float> w(6, 1.0f);
  std::vector<uint32_t> kept;
  EXPECT_THROW(select_row(w, {}, Pattern{2, 4}, 0.5, kept), Error);
}

TEST(Prune, WandaDiffersFromMagnitude) {
  // Column 0 has the largest weight but a quiet input; column 2 a small weight on a loud one.
  const std::vector<float> w = {1.0f, 0.5f, 0.2f, -0.1f};
  const std::vector<float> norms = {0.1f, 1.0f, 10.0f, 1.0f};
  std::vector<uint32_t> kept;
  select_row(w, {}, Pattern{}, 0.5, kept);
  EXPECT_EQ(kept, (std::vector<uint32_t>{0, 1}));
  select_row(w, norms, Pattern{}, 0.5, kept);  // scores 0.1, 0.5, 2.0, 0.1
  EXPECT_EQ(kept, (std::vector<uint32_t>{1, 2}));
  select_row(w, norms, Pattern{2, 4}, 0, kept);
  EXPECT_EQ(kept, (std::vector<uint32_t>{1, 2}));
}

TEST(Prune, TiesGoToLowerColumn) {
  const std::vector<float> w = {0.5f, -0.5f, 0.5f, -0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  std::vector<uint32_t> kept;
  select_row(w, {}, Pattern{}, 0.5, kept);
  EXPECT_EQ(kept, (std::vector<uint32_t>{0, 1, 2, 3}));
  select_row(w, {}, Pattern{2, 4}, 0, kept);
  EXPECT_EQ(kept, (std::vector<uint32_t>{0, 1, 4, 5}));
  const std::vector<float> w2 = {0.1f, 0.5f, 0.9f, 0.5f, 0.5f};
  select_row(w2, {}, Pattern{}, 0.4, kept);  // keeps 3: 0.9, then the two lowest 0.5s
  EXPECT_EQ(kept, (std::vector<uint32_t>{1, 2, 3}));
}

TEST(Prune, ParsePattern) {
  EXPECT_FALSE(parse_pattern("unstructured").is_nm());
  EXPECT_EQ(parse_pattern("2:4").n, 2);
  EXPECT_EQ(parse_pattern("4:8").m, 8);
  for (const char* bad : {"", "2:3", "4:4", "0:4", "2:", ":4", "2:4x", "dense", "5:1024"})
    EXPECT_THROW(parse_pattern(bad), Error) << bad;
  EXPECT_THROW(parse_prune_method("random"), Error);
  EXPECT_EQ(parse_prune_method("wanda"), PruneMethod::Wanda);
}

TEST(Prune, KeptPerRow) {
  EXPECT_EQ(kept_per_row(10, 0.5), 5);
  EXPECT_EQ(kept_per_row(3, 0.5), 1);  // round(1.5) = 2 removed
  EXPECT_EQ(kept_per_row(576, 0.7), 576 - 403);
}

}  // namespace
}  // namespace upg::compress
