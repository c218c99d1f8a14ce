#include "compress/prune.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::compress {

std::string Pattern::name() const { return is_nm() ? fmt::format("{}:{}", n, m) : "unstructured"; }

Pattern parse_pattern(std::string_view s, std::string_view origin) {
  if (s == "unstructured") return {};
  const size_t colon = s.find(':');
  Pattern p;
  bool ok = colon != std::string_view::npos;
  if (ok) {
    auto r1 = std::from_chars(s.data(), s.data() + colon, p.n);
    auto r2 = std::from_chars(s.data() + colon + 1, s.data() + s.size(), p.m);
    ok = r1.ec == std::errc() && r1.ptr == s.data() + colon && r2.ec == std::errc() && r2.ptr == s.data() + s.size();
  }
  // Positions are stored in log2(M) bits, so M must be a power of two; at most 8 bits.
  if (!ok || p.n <= 0 || p.m <= p.n || p.m > 256 || (p.m & (p.m - 1)) != 0)
    throw Error(fmt::format("{}: '{}' is not a sparsity pattern (expected unstructured, 2:4, 4:8 or N:M with "
                            "0 < N < M, M a power of two)",
                            origin, s));
  return p;
}

PruneMethod parse_prune_method(std::string_view s, std::string_view origin) {
  if (s == "magnitude") return PruneMethod::Magnitude;
  if (s == "wanda") return PruneMethod::Wanda;
  if (s == "sparsegpt") return PruneMethod::SparseGPT;
  throw Error(fmt::format("{}: '{}' is not a pruning method (expected magnitude, wanda or sparsegpt)", origin, s));
}

const char* prune_method_name(PruneMethod p) {
  switch (p) {
    case PruneMethod::Wanda: return "wanda";
    case PruneMethod::SparseGPT: return "sparsegpt";
    case PruneMethod::Magnitude: break;
  }
  return "magnitude";
}

int64_t kept_per_row(int64_t cols, double sparsity) {
  const auto removed = int64_t(std::llround(sparsity * double(cols)));
  return std::clamp<int64_t>(cols - removed, 0, cols);
}

namespace {
// Picks the `keep` best of columns [begin, end) (score descending, column ascending on
// ties: a strict total order, so the result never depends on the sort's internals) and
// appends them in column order.
void keep_best(const std::vector<float>& score, uint32_t begin, uint32_t end, int64_t keep,
               std::vector<uint32_t>& idx, std::vector<uint32_t>& kept) {
  idx.resize(end - begin);
  std::iota(idx.begin(), idx.end(), begin);
  auto better = [&](uint32_t a, uint32_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); };
  if (keep < int64_t(idx.size())) {
    std::nth_element(idx.begin(), idx.begin() + keep, idx.end(), better);
    idx.resize(size_t(keep));
  }
  std::sort(idx.begin(), idx.end());
  kept.insert(kept.end(), idx.begin(), idx.end());
}
}  // namespace

void select_row(std::span<const float> w, std::span<const float> col_norms, const Pattern& p, double sparsity,
                std::vector<uint32_t>& kept) {
  const size_t cols = w.size();
  if (!col_norms.empty() && col_norms.size() != cols)
    throw Error(fmt::format("prune: {} activation norms for a row of {} columns", col_norms.size(), cols));
  thread_local std::vector<float> score;
  thread_local std::vector<uint32_t> idx;
  score.resize(cols);
  for (size_t j = 0; j < cols; ++j) score[j] = std::fabs(w[j]) * (col_norms.empty() ? 1.0f : col_norms[j]);
  kept.clear();
  if (!p.is_nm()) {
    keep_best(score, 0, uint32_t(cols), kept_per_row(int64_t(cols), sparsity), idx, kept);
    return;
  }
  if (cols % size_t(p.m) != 0)
    throw Error(fmt::format("prune: {} columns are not a whole number of {}-column groups", cols, p.m));
  for (size_t g = 0; g < cols; g += size_t(p.m)) keep_best(score, uint32_t(g), uint32_t(g + size_t(p.m)), p.n, idx, kept);
}

}  // namespace upg::compress
