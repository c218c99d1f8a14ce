#include "compress/matrix.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/thread-pool.h"

namespace upg::compress {

using format::Encoding;

double MatrixStats::rel_error() const { return ref_sq > 0 ? std::sqrt(err_sq / ref_sq) : 0.0; }

namespace {

int thread_count(int threads) {
  return threads > 0 ? threads : ThreadPool::hardware_threads();
}

// f(k) on t threads, k in [0, t); the first exception any of them throws is rethrown
// once all have finished (ThreadPool::parallel_for does both).
void on_threads(int t, const std::function<void(int)>& f) {
  if (t <= 1) {
    f(0);
    return;
  }
  ThreadPool pool(t);
  pool.parallel_for(t, [&](int64_t k0, int64_t k1, int) {
    for (int64_t k = k0; k < k1; ++k) f(int(k));
  });
}

}  // namespace

void parallel_rows(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& f) {
  const int t = int(std::min<int64_t>(thread_count(threads), std::max<int64_t>(1, n / 16)));
  on_threads(t, [&](int k) { f(n * k / t, n * (k + 1) / t); });
}

void parallel_interleaved(int64_t n, int threads, const std::function<void(int64_t)>& f) {
  const int t = int(std::max<int64_t>(1, std::min<int64_t>(thread_count(threads), n)));
  on_threads(t, [&](int k) {
    for (int64_t i = k; i < n; i += t) f(i);
  });
}

namespace {

void check_shape(std::span<const float> w, int64_t rows, int64_t cols, const std::string& name) {
  if (rows <= 0 || cols <= 0 || int64_t(w.size()) != rows * cols)
    throw Error(fmt::format("{}: {} values for a [{}, {}] matrix", name, w.size(), rows, cols));
}

void check_finite_row(const float* row, int64_t cols, int64_t r, const std::string& name) {
  for (int64_t c = 0; c < cols; ++c)
    if (!std::isfinite(row[c])) throw Error(fmt::format("{}: weight [{}, {}] is not finite", name, r, c));
}

// The optional inputs of compress_matrix / quantize_dense_int8, sized against w.
void check_given(std::span<const float> original, std::span<const GridParams> grids, int64_t n_grids, size_t n,
                 const std::string& name) {
  if (!original.empty() && original.size() != n)
    throw Error(fmt::format("{}: {} source weights for {} compressed ones", name, original.size(), n));
  if (!grids.empty() && int64_t(grids.size()) != n_grids)
    throw Error(fmt::format("{}: {} given grids for {} groups", name, grids.size(), n_grids));
}

// Int8 codes of `v` for a scale chosen elsewhere (weights already on its grid).
float codes_for_scale(std::span<const float> v, float scale, std::vector<int32_t>& codes) {
  codes.resize(v.size());
  for (size_t j = 0; j < v.size(); ++j) codes[j] = scale > 0 ? int8_code(v[j], scale) : 0;
  return scale;
}

// Per-thread partial sums, merged once at the end so rows can run in parallel.
struct Partial {
  double err_sq = 0, ref_sq = 0;
  int64_t kept = 0;
};

// One row's int4 codes: each group of spec.group_size dense columns gets its grid from
// the values it keeps (`vals`, in the order of row.cols), or the one given (`given`, the
// row's groups), then every value its code.
void quantize_int4_row(format::SparseRow& row, format::Int4Groups& out, std::span<const float> vals,
                       const ValueSpec& spec, QuantMethod q, int64_t cols, std::span<const GridParams> given,
                       std::vector<Int4Group>& groups) {
  const int64_t n_groups = format::int4_groups(cols, spec.group_size);
  groups.assign(size_t(n_groups), Int4Group{});
  row.codes.resize(vals.size());
  out.scales.resize(size_t(n_groups));
  out.zeros.resize(spec.zero_point ? size_t(n_groups) : 0);
  for (size_t k = 0, g = 0; g < size_t(n_groups); ++g) {
    const size_t begin = k;
    while (k < vals.size() && row.cols[k] / uint32_t(spec.group_size) == g) ++k;
    const std::span<const float> part = vals.subspan(begin, k - begin);
    groups[g] = given.empty() ? int4_group(part, spec.zero_point, q, spec.bits()) : int4_stored(given[g], spec.bits());
    for (size_t i = begin; i < k; ++i) row.codes[i] = int4_code(vals[i], groups[g]);
    out.scales[g] = groups[g].scale;
    if (spec.zero_point) out.zeros[g] = uint8_t(groups[g].zero);
  }
}

}  // namespace

void check_matrix_options(const MatrixOptions& o) {
  const Encoding enc = o.values.encoding;
  const bool int4 = format::is_grouped(enc);  // int4, int3 or int2
  if (o.pattern.is_nm() && enc != Encoding::Int8 && enc != Encoding::Int4)
    throw ParamError("values", fmt::format("{} cannot be stored in the {} layout (N:M holds int8 or int4 values only); "
                                           "use the unstructured pattern",
                                           o.values.name(), o.pattern.name()));
  if (!o.pattern.is_nm() && !(o.sparsity >= 0.0 && o.sparsity < 1.0))
    throw ParamError("sparsity", fmt::format("{} is outside [0, 1)", o.sparsity));
  if (!int4) return;
  if (!o.pattern.is_nm() && o.sparsity != 0.0)
    throw ParamError("sparsity", fmt::format("{} with {} values: they are stored dense (sparsity 0){}; unstructured "
                                             "they would cost more bits than dense (docs/FORMAT.md 4.3)",
                                             o.sparsity, o.values.name(), enc == Encoding::Int4 ? " or N:M" : ""));
  if (!format::int4_group_size_ok(o.values.group_size))
    throw ParamError("group_size", fmt::format("{} (expected 32, 64 or 128)", o.values.group_size));
  if (o.pattern.is_nm() && o.values.group_size % o.pattern.m != 0)
    throw ParamError("group_size", fmt::format("{} is not a multiple of M = {} of the {} pattern", o.values.group_size,
                                               o.pattern.m, o.pattern.name()));
}

format::CompressedData compress_matrix(std::span<const float> w, int64_t rows, int64_t cols,
                                       std::span<const float> col_norms, const MatrixOptions& opts,
                                       const std::string& name, MatrixStats* stats, std::vector<float>* reference,
                                       std::span<const float> original, std::span<const GridParams> grids) {
  check_shape(w, rows, cols, name);
  const Pattern& pat = opts.pattern;
  const Encoding enc = opts.values.encoding;
  check_matrix_options(opts);
  const bool int4 = format::is_grouped(enc);  // int4, int3 or int2
  const int64_t row_groups = int4 ? format::int4_groups(cols, opts.values.group_size) : 1;
  check_given(original, grids, rows * row_groups, w.size(), name);
  if (!grids.empty() && enc != Encoding::Int8 && !int4)
    throw Error(fmt::format("{}: given grids need int8 or grouped values, not {}", name, opts.values.name()));
  if (pat.is_nm() && cols % pat.m != 0)
    throw Error(fmt::format("{}: {} columns are not a whole number of {}-column groups for {}", name, cols, pat.m,
                            pat.name()));
  if (!col_norms.empty() && int64_t(col_norms.size()) != cols)
    throw Error(fmt::format("{}: {} activation norms for {} columns", name, col_norms.size(), cols));

  // Pass 1: the surviving columns of every row (values are quantized in pass 2, once a
  // codebook, which needs every row's survivors, exists).
  std::vector<format::SparseRow> srows(static_cast<size_t>(rows));
  parallel_rows(rows, opts.threads, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* row = w.data() + r * cols;
      check_finite_row(row, cols, r, name);
      select_row({row, size_t(cols)}, col_norms, pat, opts.sparsity, srows[size_t(r)].cols);
    }
  });

  std::vector<float> codebook;
  if (enc == Encoding::Codebook) {
    std::vector<float> normalized;
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = w.data() + r * cols;
      float amax = 0;
      for (uint32_t c : srows[size_t(r)].cols) amax = std::max(amax, std::fabs(row[c]));
      if (amax == 0) continue;
      for (uint32_t c : srows[size_t(r)].cols) normalized.push_back(row[c] / amax);
    }
    codebook = train_codebook(normalized, opts.values.k, opts.seed);
  }

  std::vector<format::Int4Groups> int4_groups(int4 ? size_t(rows) : 0);
  if (reference) reference->assign(size_t(rows * cols), 0.0f);
  std::mutex mu;
  Partial total;
  parallel_rows(rows, opts.threads, [&](int64_t b, int64_t e) {
    Partial part;
    std::vector<float> vals;
    std::vector<Int4Group> groups;  // int4: the row's groups
    for (int64_t r = b; r < e; ++r) {
      const float* row = w.data() + r * cols;
      format::SparseRow& sr = srows[size_t(r)];
      vals.clear();
      for (uint32_t c : sr.cols) vals.push_back(row[c]);
      switch (enc) {
        case Encoding::Int8:
          if (grids.empty()) sr.scale = quantize_int8(vals, opts.quant, sr.codes);
          else sr.scale = codes_for_scale(vals, grids[size_t(r)].scale, sr.codes);
          break;
        case Encoding::Prime: sr.scale = quantize_prime(vals, opts.values.k, opts.quant, sr.codes); break;
        case Encoding::Codebook: sr.scale = quantize_codebook(vals, codebook, sr.codes); break;
        case Encoding::Int4:
        case Encoding::Int3:
        case Encoding::Int2:
          quantize_int4_row(sr, int4_groups[size_t(r)], vals, opts.values, opts.quant, cols,
                            grids.empty() ? grids : grids.subspan(size_t(r * row_groups), size_t(row_groups)), groups);
          break;
      }
      part.kept += int64_t(sr.cols.size());
      // Pruned weights contribute their full square, kept ones their quantization error
      // (measured against the source's weights when they differ from `w`).
      const float* src_row = (original.empty() ? w.data() : original.data()) + r * cols;
      double row_sq = 0, err_sq = 0;
      for (int64_t c = 0, k = 0; c < cols; ++c) {
        const double x = src_row[c];
        double wh = 0;
        if (size_t(k) < sr.cols.size() && sr.cols[size_t(k)] == uint32_t(c)) {
          const float q = int4 ? int4_dequantize(sr.codes[size_t(k)], groups[size_t(c) / size_t(opts.values.group_size)])
                               : dequantize(enc, sr.codes[size_t(k)], sr.scale, codebook);
          if (reference) (*reference)[size_t(r * cols + c)] = q;
          wh = q;
          ++k;
        }
        row_sq += x * x;
        err_sq += (x - wh) * (x - wh);
      }
      part.ref_sq += row_sq;
      part.err_sq += err_sq;
    }
    std::lock_guard lock(mu);
    total.err_sq += part.err_sq;
    total.ref_sq += part.ref_sq;
    total.kept += part.kept;
  });
  if (stats) *stats = {total.err_sq, total.ref_sq, total.kept};

  if (int4 && pat.is_nm()) return format::encode_nm_int4(cols, srows, int4_groups, pat.n, pat.m, opts.values.group_size);
  if (int4) return format::encode_dense_grouped(enc, cols, srows, int4_groups, opts.values.group_size);
  if (pat.is_nm()) return format::encode_nm(cols, srows, pat.n, pat.m);
  return format::encode_mdcsr(cols, srows, enc, std::move(codebook));
}

DenseInt8 quantize_dense_int8(std::span<const float> w, int64_t rows, int64_t cols, QuantMethod q,
                              const std::string& name, MatrixStats* stats, int threads,
                              std::span<const GridParams> grids, std::span<const float> original) {
  check_shape(w, rows, cols, name);
  check_given(original, grids, rows, w.size(), name);
  DenseInt8 d;
  d.qweight.resize(size_t(rows * cols));
  d.scales.resize(size_t(rows));
  std::mutex mu;
  Partial total;
  parallel_rows(rows, threads, [&](int64_t b, int64_t e) {
    Partial part;
    std::vector<int32_t> codes;
    for (int64_t r = b; r < e; ++r) {
      const float* row = w.data() + r * cols;
      check_finite_row(row, cols, r, name);
      const float scale = grids.empty() ? quantize_int8({row, size_t(cols)}, q, codes)
                                        : codes_for_scale({row, size_t(cols)}, grids[size_t(r)].scale, codes);
      d.scales[size_t(r)] = scale;
      const float* src_row = (original.empty() ? w.data() : original.data()) + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        d.qweight[size_t(r * cols + c)] = int8_t(codes[size_t(c)]);
        const double x = src_row[c], diff = x - double(scale * float(codes[size_t(c)]));
        part.err_sq += diff * diff;
        part.ref_sq += x * x;
      }
    }
    std::lock_guard lock(mu);
    total.err_sq += part.err_sq;
    total.ref_sq += part.ref_sq;
  });
  if (stats) *stats = {total.err_sq, total.ref_sq, rows * cols};
  return d;
}

}  // namespace upg::compress
