#pragma once
// Pruning of one weight matrix row: which columns survive. Deterministic (ties go to the
// lower column) so a compressed file is reproducible bit for bit.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace upg::compress {

// n == 0: unstructured; otherwise N:M (keep at most n of every m consecutive columns).
struct Pattern {
  int n = 0, m = 0;
  bool is_nm() const { return m > 0; }
  std::string name() const;  // "unstructured", "2:4"
};
// "unstructured", "2:4", "4:8" (any N:M with 0 < N < M, M a power of two <= 256).
// Throws upg::Error naming `origin` on anything else.
Pattern parse_pattern(std::string_view s, std::string_view origin = "--pattern");

// magnitude ranks by |w|; wanda by |w| * ||x_j||; sparsegpt prunes by OBS saliency and
// updates the surviving weights (compress/sparsegpt.h), then keeps exactly its nonzeros.
enum class PruneMethod { Magnitude, Wanda, SparseGPT };
PruneMethod parse_prune_method(std::string_view s, std::string_view origin = "--prune");
const char* prune_method_name(PruneMethod p);

// Columns an unstructured row keeps: cols - round(sparsity * cols).
int64_t kept_per_row(int64_t cols, double sparsity);

// The surviving columns of one row, ascending. Score of column j: |w[j]| (magnitude,
// col_norms empty) or |w[j]| * col_norms[j] (Wanda: the input channel's L2 norm over the
// calibration tokens). Unstructured keeps the kept_per_row(cols, sparsity) best; N:M
// keeps the N best of each group of M (`sparsity` is then ignored; cols % M must be 0).
void select_row(std::span<const float> w, std::span<const float> col_norms, const Pattern& p, double sparsity,
                std::vector<uint32_t>& kept);

}  // namespace upg::compress
