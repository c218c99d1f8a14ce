#include "compress/sparsegpt.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "compress/blas.h"
#include "compress/gptq.h"
#include "compress/matrix.h"
#include "upg/core/error.h"
#include "upg/kernels/cpu.h"

namespace upg::compress {

namespace {

// Marks the `count` columns of [begin, end) with the least saliency as pruned. Strict
// order (saliency, then the higher column first) so the result never depends on the
// selection algorithm's internals.
void prune_least(const float* w, const float* u, int64_t cols, int64_t begin, int64_t end, int64_t count,
                 std::vector<float>& score, std::vector<int64_t>& idx, uint8_t* pruned) {
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
  for (int64_t k = 0; k < std::min<int64_t>(count, int64_t(idx.size())); ++k) pruned[idx[size_t(k)]] = 1;
}

}  // namespace

std::vector<GridParams> obs_sweep(std::span<float> w, int64_t rows, int64_t cols, std::span<const float> u,
                             const SweepOptions& o) {
  if (rows <= 0 || cols <= 0 || int64_t(w.size()) != rows * cols || int64_t(u.size()) != cols * cols)
    throw Error(fmt::format("sparsegpt: {} weights and a {}-value inverse factor for a [{}, {}] matrix", w.size(),
                            u.size(), rows, cols));
  const Pattern& p = o.pattern;
  if (p.is_nm() && cols % p.m != 0)
    throw Error(fmt::format("sparsegpt: {} columns are not a whole number of {}-column groups", cols, p.m));
  if (!o.order.empty() && int64_t(o.order.size()) != cols)
    throw Error(fmt::format("sparsegpt: a column order of {} for {} columns", o.order.size(), cols));
  const bool prune = p.is_nm() || o.sparsity > 0;
  const int64_t group = o.grid ? o.grid->group_size(cols) : cols;
  if (group <= 0) throw Error(fmt::format("sparsegpt: a quantization group of {} columns", group));
  // The last group may be partial (576 columns in groups of 128), as the file's int4 groups.
  const int64_t groups = (cols + group - 1) / group;
  // Sweep position -> source column (the group a scale belongs to), and back.
  std::vector<int64_t> col_of(static_cast<size_t>(cols)), pos_of(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) col_of[size_t(i)] = o.order.empty() ? i : o.order[size_t(i)];
  for (int64_t i = 0; i < cols; ++i) pos_of[size_t(col_of[size_t(i)])] = i;
  std::vector<GridParams> grids(o.grid ? size_t(rows * groups) : 0);
  std::vector<uint8_t> chosen(grids.size(), 0);
  std::vector<uint8_t> pruned(static_cast<size_t>(rows * cols), 0);

  // A block holds whole N:M groups and whole quantization groups, so each is decided on
  // weights that have had every update from the columns before it.
  int64_t block = std::max<int64_t>(1, o.block);
  if (p.is_nm()) block = std::max<int64_t>(1, block / p.m) * p.m;
  if (group < cols && o.order.empty()) block = std::max<int64_t>(1, block / group) * group;
  std::vector<float> err;  // [rows, block]: each column's compensation, applied lazily
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(cols, i1 + block), nb = i2 - i1;
    err.assign(size_t(rows * nb), 0.0f);
    parallel_rows(rows, o.threads, [&](int64_t b, int64_t e) {
      std::vector<float> score(static_cast<size_t>(cols)), vals;
      std::vector<int64_t> idx;
      for (int64_t r = b; r < e; ++r) {
        float* row = w.data() + r * cols;
        uint8_t* gone = pruned.data() + r * cols;
        // Cumulative rounding: the blocks' counts add up to exactly round(sparsity * cols).
        if (prune && !p.is_nm())
          prune_least(row, u.data(), cols, i1, i2,
                      int64_t(std::llround(o.sparsity * double(i2))) - int64_t(std::llround(o.sparsity * double(i1))),
                      score, idx, gone);
        for (int64_t i = i1; i < i2; ++i) {
          if (p.is_nm() && i % p.m == 0) prune_least(row, u.data(), cols, i, i + p.m, p.m - p.n, score, idx, gone);
          float q = 0.0f;
          if (!gone[i]) {
            if (!o.grid) continue;
            const int64_t g = col_of[size_t(i)] / group;
            GridParams& grid = grids[size_t(r * groups + g)];
            if (!chosen[size_t(r * groups + g)]) {
              // The group's kept weights as they stand now (columns past this block have
              // not had this block's updates yet, as in the GPTQ reference).
              vals.clear();
              for (int64_t c = g * group; c < std::min(cols, (g + 1) * group); ++c)
                if (!gone[pos_of[size_t(c)]]) vals.push_back(row[pos_of[size_t(c)]]);
              grid = o.grid->choose(vals);
              chosen[size_t(r * groups + g)] = 1;
            }
            q = o.grid->value(o.grid->code(row[i], grid), grid);
          }
          const float* ui = u.data() + i * cols;
          const float d = (row[i] - q) / ui[i];
          row[i] = q;
          err[size_t(r * nb + (i - i1))] = d;
          if (d != 0.0f && i + 1 < i2) kernels::axpy(-d, ui + i + 1, row + i + 1, i2 - i - 1);
        }
      }
    });
    // The block's compensation of every later column as one GEMM (the lazy batch update
    // of GPTQ): W[:, i2:] -= err U[i1:i2, i2:].
    if (i2 < cols) {
      blas::set_threads(o.threads);
      blas::gemm_nn(w.data() + i2, cols, err.data(), nb, u.data() + i1 * cols + i2, cols, rows, nb, cols - i2, -1.0f);
    }
  }
  return grids;
}

void sparsegpt_prune(std::span<float> w, int64_t rows, int64_t cols, std::span<const float> u, const Pattern& p,
                     double sparsity, int threads, int64_t block) {
  SweepOptions o;
  o.pattern = p;
  o.sparsity = sparsity;
  o.threads = threads;
  o.block = block;
  obs_sweep(w, rows, cols, u, o);
}

void sparsegpt_target(std::span<float> w, int64_t rows, int64_t cols, const Hessian& C, double lambda,
                      std::span<const float> u, double blend, int threads) {
  if (rows <= 0 || cols <= 0 || int64_t(w.size()) != rows * cols || C.cols != cols ||
      int64_t(C.h.size()) != cols * cols || int64_t(u.size()) != cols * cols || !(blend >= 0.0 && blend <= 1.0))
    throw Error(fmt::format("sparsegpt: a [{}, {}] matrix with {} weights, a {}-column cross term, a {}-value "
                            "inverse factor and blend {}",
                            rows, cols, w.size(), C.cols, u.size(), blend));
  // Three matrix products over all rows at once: A = W (C + lambda I), then
  // (H + lambda I)^-1 = U^T U with U upper, so W' = A U^T U.
  std::vector<float> a(w.begin(), w.end());
  for (float& v : a) v *= float(lambda);
  blas::set_threads(threads);
  blas::gemm_nn(a.data(), cols, w.data(), cols, C.h.data(), cols, rows, cols, cols, 1.0f);
  blas::trmm_right_upper(a.data(), rows, cols, u.data(), true);
  blas::trmm_right_upper(a.data(), rows, cols, u.data(), false);
  for (size_t k = 0; k < w.size(); ++k) w[k] = float(blend * a[k] + (1.0 - blend) * w[k]);
}

}  // namespace upg::compress
