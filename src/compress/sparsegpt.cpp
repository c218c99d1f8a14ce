#include "compress/sparsegpt.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "compress/matrix.h"
#include "upg/core/error.h"
#include "upg/kernels/cpu.h"

namespace upg::compress {

namespace {

// Marks the `count` columns of [begin, end) with the least saliency as pruned. Strict
// order (saliency, then the higher column first) so the result never depends on the
// selection algorithm's internals.
void prune_least(const float* w, const float* u, int64_t cols, int64_t begin, int64_t end, int64_t count,
                 std::vector<float>& score, std::vector<int64_t>& idx, std::vector<uint8_t>& pruned) {
  if (count <= 0) return;
  idx.resize(size_t(end - begin));
  std::iota(idx.begin(), idx.end(), begin);
  for (int64_t j = begin; j < end; ++j) {
    const float s = w[j] / u[j * cols + j];
    score[size_t(j)] = s * s;
  }
  auto less = [&](int64_t a, int64_t b) {
    return score[size_t(a)] < score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a > b);
  };
  if (count < int64_t(idx.size())) std::nth_element(idx.begin(), idx.begin() + count, idx.end(), less);
  for (int64_t k = 0; k < std::min<int64_t>(count, int64_t(idx.size())); ++k) pruned[size_t(idx[size_t(k)])] = 1;
}

}  // namespace

void sparsegpt_prune(std::span<float> w, int64_t rows, int64_t cols, std::span<const float> u, const Pattern& p,
                     double sparsity, int threads, int64_t block) {
  if (rows <= 0 || cols <= 0 || int64_t(w.size()) != rows * cols || int64_t(u.size()) != cols * cols)
    throw Error(fmt::format("sparsegpt: {} weights and a {}-value inverse factor for a [{}, {}] matrix", w.size(),
                            u.size(), rows, cols));
  if (p.is_nm() && cols % p.m != 0)
    throw Error(fmt::format("sparsegpt: {} columns are not a whole number of {}-column groups", cols, p.m));
  block = std::max<int64_t>(1, block);
  parallel_rows(rows, threads, [&](int64_t b, int64_t e) {
    std::vector<float> score(static_cast<size_t>(cols));
    std::vector<int64_t> idx;
    std::vector<uint8_t> pruned(static_cast<size_t>(cols));
    for (int64_t r = b; r < e; ++r) {
      float* row = w.data() + r * cols;
      std::fill(pruned.begin(), pruned.end(), 0);
      for (int64_t i1 = 0; i1 < cols; i1 += block) {
        const int64_t i2 = std::min(cols, i1 + block);
        if (!p.is_nm()) {
          // Cumulative rounding: the blocks' counts add up to exactly round(sparsity * cols).
          const int64_t count =
              int64_t(std::llround(sparsity * double(i2))) - int64_t(std::llround(sparsity * double(i1)));
          prune_least(row, u.data(), cols, i1, i2, count, score, idx, pruned);
        }
        for (int64_t i = i1; i < i2; ++i) {
          if (p.is_nm() && i % p.m == 0) prune_least(row, u.data(), cols, i, i + p.m, p.m - p.n, score, idx, pruned);
          if (!pruned[size_t(i)]) continue;
          const float* ui = u.data() + i * cols;
          const float err = row[i] / ui[i];
          row[i] = 0.0f;
          if (err != 0.0f && i + 1 < cols) kernels::axpy(-err, ui + i + 1, row + i + 1, cols - i - 1);
        }
      }
    }
  });
}

void sparsegpt_target(std::span<float> w, int64_t rows, int64_t cols, const Hessian& C, double lambda,
                      std::span<const float> u, double blend, int threads) {
  if (rows <= 0 || cols <= 0 || int64_t(w.size()) != rows * cols || C.cols != cols ||
      int64_t(C.h.size()) != cols * cols || int64_t(u.size()) != cols * cols || !(blend >= 0.0 && blend <= 1.0))
    throw Error(fmt::format("sparsegpt: a [{}, {}] matrix with {} weights, a {}-column cross term, a {}-value "
                            "inverse factor and blend {}",
                            rows, cols, w.size(), C.cols, u.size(), blend));
  parallel_rows(rows, threads, [&](int64_t b, int64_t e) {
    std::vector<float> a(static_cast<size_t>(cols)), t(static_cast<size_t>(cols)), w0(static_cast<size_t>(cols));
    for (int64_t r = b; r < e; ++r) {
      float* row = w.data() + r * cols;
      std::copy(row, row + cols, w0.begin());
      // a = w (C + lambda I)
      for (int64_t j = 0; j < cols; ++j) a[size_t(j)] = float(lambda) * row[j];
      for (int64_t i = 0; i < cols; ++i)
        if (row[i] != 0.0f) kernels::axpy(row[i], C.h.data() + i * cols, a.data(), cols);
      // (H + lambda I)^-1 = U^T U, U upper: t = a U^T, then row = t U.
      for (int64_t p = 0; p < cols; ++p) t[size_t(p)] = kernels::dot(a.data() + p, u.data() + p * cols + p, cols - p);
      std::fill(row, row + cols, 0.0f);
      for (int64_t p = 0; p < cols; ++p)
        if (t[size_t(p)] != 0.0f) kernels::axpy(t[size_t(p)], u.data() + p * cols + p, row + p, cols - p);
      for (int64_t j = 0; j < cols; ++j) row[j] = float(blend * row[j] + (1.0 - blend) * w0[size_t(j)]);
    }
  });
}

}  // namespace upg::compress
