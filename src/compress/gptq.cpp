#include "compress/gptq.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "compress/sparsegpt.h"
#include "upg/core/error.h"

namespace upg::compress {

GridParams Int8RowGrid::choose(std::span<const float> w) const {
  std::vector<int32_t> codes;
  return {quantize_int8(w, method_, codes), 0};
}

int32_t Int8RowGrid::code(float w, const GridParams& g) const { return g.scale > 0.0f ? int8_code(w, g.scale) : 0; }

float Int8RowGrid::value(int32_t code, const GridParams& g) const {
  return dequantize(format::Encoding::Int8, code, g.scale, {});
}

GridParams Int4GroupGrid::choose(std::span<const float> w) const {
  return int4_params(int4_group(w, zero_point_, method_, bits_));
}

// `g` came from int4_params, so its step is already the stored fp16 value as a float.
int32_t Int4GroupGrid::code(float w, const GridParams& g) const { return grid_code(w, g, (1 << bits_) - 1); }

float Int4GroupGrid::value(int32_t code, const GridParams& g) const { return grid_value(int(code), g); }

std::vector<GridParams> gptq_sweep(std::span<float> w, int64_t rows, int64_t cols, const Hessian& H,
                              std::span<const float> u, const GptqOptions& o) {
  if (H.cols != cols || int64_t(H.h.size()) != cols * cols)
    throw Error(fmt::format("gptq: a {}-column Hessian for a [{}, {}] matrix", H.cols, rows, cols));
  if (rows <= 0 || int64_t(w.size()) != rows * cols)
    throw Error(fmt::format("gptq: {} weights for a [{}, {}] matrix", w.size(), rows, cols));
  if (o.act_order && o.pattern.is_nm())
    throw ParamError("act_order", fmt::format("the {} pattern prunes adjacent columns; activation order reorders "
                                              "them (use the unstructured pattern)",
                                              o.pattern.name()));
  // Fields assigned one by one: GCC 12 warns on designated initializers that leave one out.
  SweepOptions so;
  so.pattern = o.pattern;
  so.sparsity = o.sparsity;
  so.grid = o.grid;
  so.block = o.block;
  so.threads = o.threads;
  if (!o.act_order) {
    std::vector<float> own;
    if (u.empty()) own = inverse_factor(H, o.damp, o.threads);
    return obs_sweep(w, rows, cols, u.empty() ? std::span<const float>(own) : u, so);
  }
  // Decreasing H_ii; ties keep the source order, so the permutation is reproducible.
  std::vector<int64_t> order(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return H.h[size_t(a * cols + a)] > H.h[size_t(b * cols + b)];
  });
  Hessian P = make_hessian(cols);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      P.h[size_t(i * cols + j)] = H.h[size_t(order[size_t(i)] * cols + order[size_t(j)])];
  const std::vector<float> up = inverse_factor(P, o.damp, o.threads);
  P = {};
  std::vector<float> row(static_cast<size_t>(cols));
  auto permute = [&](bool forward) {
    for (int64_t r = 0; r < rows; ++r) {
      float* wr = w.data() + r * cols;
      for (int64_t i = 0; i < cols; ++i) {
        if (forward) row[size_t(i)] = wr[order[size_t(i)]];
        else row[size_t(order[size_t(i)])] = wr[i];
      }
      std::copy(row.begin(), row.end(), wr);
    }
  };
  permute(true);
  so.order = order;
  std::vector<GridParams> grids = obs_sweep(w, rows, cols, up, so);
  permute(false);
  return grids;
}

}  // namespace upg::compress
