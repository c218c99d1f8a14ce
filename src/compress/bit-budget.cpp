#include "compress/bit-budget.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "compress/compressor.h"
#include "upg/core/error.h"

namespace upg::compress {

namespace {

uint64_t cheapest(const std::vector<Candidate>& c) {
  uint64_t lo = std::numeric_limits<uint64_t>::max();
  for (const Candidate& x : c) lo = std::min(lo, x.bytes);
  return lo;
}

Setting int4_setting(const MatrixOptions& base, int group, const char* pattern, int bits = 4) {
  Setting s;
  s.matrix = base;
  s.matrix.pattern = parse_pattern(pattern);
  s.matrix.sparsity = s.matrix.pattern.is_nm() ? 1.0 - double(s.matrix.pattern.n) / s.matrix.pattern.m : 0.0;
  s.matrix.values = {.encoding = format::grouped_encoding(bits), .group_size = group, .zero_point = true};
  s.name = fmt::format("{}int{}-g{}-zp", s.matrix.pattern.is_nm() ? s.matrix.pattern.name() + "-" : "", bits, group);
  return s;
}

Setting dense_int8_setting(const MatrixOptions& base) {
  Setting s;
  s.name = "int8";
  s.matrix = base;
  s.dense_int8 = true;
  return s;
}

}  // namespace

std::vector<Setting> linear_ladder(const MatrixOptions& base) {
  // Zero points in every grouped step: the Q4_1 source's own grid is asymmetric, and with
  // them every group size measured better (docs/QUALITY.md); at 3 and 2 bits a symmetric
  // grid would also waste one of its few levels.
  return {dense_int8_setting(base),
          int4_setting(base, 32, "unstructured"),
          int4_setting(base, 64, "unstructured"),
          int4_setting(base, 128, "unstructured"),
          int4_setting(base, 64, "2:4"),
          int4_setting(base, 32, "unstructured", 3),
          int4_setting(base, 64, "unstructured", 3),
          int4_setting(base, 128, "unstructured", 3),
          int4_setting(base, 32, "unstructured", 2),
          int4_setting(base, 64, "unstructured", 2)};
}

std::vector<Setting> embedding_ladder(const MatrixOptions& base) {
  // No int3: the measure (a weight error) ranks an int3 embedding far above what it costs
  // the model, so every budget from 0.40 to 0.60 took it (docs/COMPRESSION.md);
  // `--embeddings int3` stores it so on request.
  Setting int4;
  int4.name = fmt::format("int4-g{}-zp", kEmbeddingInt4Group);
  int4.matrix = embedding_int4_options(base.threads);
  int4.matrix.quant = base.quant;
  return {dense_int8_setting(base), int4};
}

Candidate measure_setting(std::span<const float> w, int64_t rows, int64_t cols, std::span<const float> col_norms,
                          const Setting& setting, const std::string& name) {
  if (!col_norms.empty() && int64_t(col_norms.size()) != cols)
    throw Error(fmt::format("{}: {} activation norms for {} columns", name, col_norms.size(), cols));
  Candidate c;
  std::vector<float> decoded;
  if (setting.dense_int8) {
    const DenseInt8 q = quantize_dense_int8(w, rows, cols, setting.matrix.quant, name, nullptr, setting.matrix.threads);
    c.bytes = q.qweight.size() + q.scales.size() * sizeof(float);
    decoded.resize(q.qweight.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < cols; ++k)
        decoded[size_t(r * cols + k)] = q.scales[size_t(r)] * float(q.qweight[size_t(r * cols + k)]);
  } else {
    const std::span<const float> norms = setting.matrix.pattern.is_nm() ? col_norms : std::span<const float>();
    const format::CompressedData d = compress_matrix(w, rows, cols, norms, setting.matrix, name, nullptr, &decoded);
    c.bytes = d.view().bytes();
  }
  double err = 0, ref = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) {
      const double n2 = col_norms.empty() ? 1.0 : double(col_norms[size_t(k)]) * col_norms[size_t(k)];
      const double x = w[size_t(r * cols + k)], e = x - decoded[size_t(r * cols + k)];
      err += e * e * n2;
      ref += x * x * n2;
    }
  c.error = ref > 0 ? err / ref : 0.0;
  return c;
}

std::vector<int> choose_settings(const std::vector<std::vector<Candidate>>& candidates, uint64_t budget) {
  // A multiple-choice knapsack, solved exactly by dynamic programming over bytes above
  // each tensor's cheapest choice, in units that keep the table at most 65,536 wide
  // (hand-written: no Debian package solves it, and it is a few lines).
  uint64_t floor = 0, span = 0;
  for (const auto& c : candidates) {
    if (c.empty()) throw Error("choose_settings: a tensor without candidates");
    uint64_t hi = 0;
    for (const Candidate& x : c) hi = std::max(hi, x.bytes);
    floor += cheapest(c);
    span += hi - cheapest(c);
  }
  if (floor > budget) return {};
  constexpr uint64_t kWidth = 65536;
  const uint64_t unit = std::max<uint64_t>(1, (span + kWidth - 1) / kWidth);
  const size_t cap = size_t(std::min(span, budget - floor) / unit);
  // best[c]: the least error of the tensors so far within c units (so never increasing
  // in c); pick[i][c]: tensor i's choice there.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> best(cap + 1, 0.0), next(cap + 1);
  std::vector<std::vector<uint8_t>> pick(candidates.size(), std::vector<uint8_t>(cap + 1));
  std::vector<size_t> cost;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    const uint64_t lo = cheapest(c);
    cost.resize(c.size());
    for (size_t j = 0; j < c.size(); ++j) cost[j] = size_t((c[j].bytes - lo + unit - 1) / unit);
    for (size_t u = 0; u <= cap; ++u) {
      double b = kInf;
      uint8_t p = 0;
      for (size_t j = 0; j < c.size(); ++j)
        if (cost[j] <= u && best[u - cost[j]] + c[j].error < b) b = best[u - cost[j]] + c[j].error, p = uint8_t(j);
      next[u] = b;
      pick[i][u] = p;
    }
    best.swap(next);
  }
  std::vector<int> choice(candidates.size());
  size_t u = cap;
  for (size_t i = candidates.size(); i-- > 0;) {
    const auto& c = candidates[i];
    const uint64_t lo = cheapest(c);
    choice[i] = pick[i][u];
    u -= size_t((c[size_t(choice[i])].bytes - lo + unit - 1) / unit);
  }
  return choice;
}

BudgetPlan plan_budget(const std::vector<PlanTensor>& tensors, const Calibration* cal, const MatrixOptions& base,
                       double target_bpw, uint64_t fixed_bytes, int64_t total_weights,
                       const std::function<void(int, int, const std::string&)>& progress) {
  const std::vector<Setting> linear = linear_ladder(base), embedding = embedding_ladder(base);
  BudgetPlan plan;
  plan.target_bpw = target_bpw;
  plan.calibrated = cal != nullptr;
  std::vector<std::vector<Candidate>> candidates;
  std::vector<float> w;
  for (const PlanTensor& t : tensors) {
    if (t.view.shape.size() != 2) throw Error(fmt::format("{}: the size budget plans 2-D weights only", t.name));
    w.resize(size_t(t.view.numel()));
    convert_to_f32(t.view.dtype, t.view.data, w.data(), t.view.numel());
    std::span<const float> norms;
    if (cal && !t.embedding) {
      auto it = cal->col_norms.find(t.name);
      if (it == cal->col_norms.end())
        throw Error(fmt::format("tensor '{}': the calibration pass saw no input for it", t.name));
      norms = it->second;
    }
    auto& c = candidates.emplace_back();
    for (const Setting& s : t.embedding ? embedding : linear) {
      c.push_back(measure_setting(w, t.view.shape[0], t.view.shape[1], norms, s, t.name));
      c.back().error *= t.weight * (s.matrix.pattern.is_nm() ? kNmErrorFactor : 1.0);
    }
    if (progress) progress(int(candidates.size()), int(tensors.size()), t.name);
  }
  const double total = target_bpw * double(total_weights);
  uint64_t floor = fixed_bytes;
  for (const auto& c : candidates) floor += cheapest(c);
  if (double(floor) > total)
    throw ParamError("target_bpw", fmt::format("{} bytes per weight cannot be met: the cheapest settings give {:.4f} "
                                               "(int2 g64 decoder linears, int4 embedding)",
                                               target_bpw, double(floor) / double(total_weights)));
  plan.budget = uint64_t(total) - fixed_bytes;
  const std::vector<int> choice = choose_settings(candidates, plan.budget);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::vector<Setting>& ladder = tensors[i].embedding ? embedding : linear;
    const Candidate& c = candidates[i][size_t(choice[i])];
    plan.settings[tensors[i].name] = ladder[size_t(choice[i])];
    plan.measured[tensors[i].name] = c;
    plan.bytes += c.bytes;
    plan.total_error += c.error;
  }
  return plan;
}

}  // namespace upg::compress
