#include "compress/layerwise.h"

#include <fmt/format.h>

#include "compress/calibrate.h"
#include "compress/sparsegpt.h"
#include "upg/error.h"

namespace upg::compress {

std::map<std::string, PrunedTensor, std::less<>> sparsegpt_layerwise(
    Model& model, const std::vector<int32_t>& tokens, const MatrixOptions& mo,
    const std::function<bool(const std::string&)>& prune, int chunk, const std::function<void(int)>& progress) {
  const ModelConfig& c = model.config();
  const int64_t hidden = c.hidden_size;
  const std::vector<Batch> batches = calibration_batches(model, tokens, chunk);
  // The residual stream of every calibration token [tokens, hidden], and a copy the
  // dense run of a layer writes into (its outputs are thrown away).
  std::vector<float> x(tokens.size() * size_t(hidden)), dense_run;
  auto each_batch = [&](std::vector<float>& stream, auto&& f) {
    size_t off = 0;
    for (const Batch& b : batches) {
      f(b, stream.data() + off * size_t(hidden));
      off += b.size();
    }
  };
  each_batch(x, [&](const Batch& b, float* xs) { model.embed(b, xs); });

  std::map<std::string, PrunedTensor, std::less<>> out;
  std::vector<float> src, updated, decoded;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string prefix = fmt::format("model.layers.{}.", l);
    auto mine = [&](const std::string& name) { return name.starts_with(prefix) && prune(name); };
    CalibrationCollector collector(mine, mo.threads);
    dense_run = x;
    {
      // run_layer only runs layer l's matmuls; the collector keeps Hessians of `mine`.
      ObserverScope scope(model, [&](const LinearWeight& w, const float* xin, int64_t n) { collector.observe(w, xin, n); });
      each_batch(dense_run, [&](const Batch& b, float* xs) { model.run_layer(l, b, xs); });
    }
    const Calibration cal = collector.finish(int64_t(tokens.size()));
    std::map<const Hessian*, std::vector<float>> factors;  // q, k and v share theirs
    for (const auto& [name, h] : cal.hessians) {
      const TensorView& t = model.source().weights.get(name);
      const int64_t rows = t.shape[0], cols = t.shape[1];
      src.resize(size_t(t.numel()));
      convert_to_f32(t.dtype, t.data, src.data(), t.numel());
      std::vector<float>& u = factors[h.get()];
      if (u.empty()) u = inverse_factor(*h, kSparseGptDamp, mo.threads);
      updated = src;
      sparsegpt_prune(updated, rows, cols, u, mo.pattern, mo.sparsity, mo.threads, kSparseGptBlock);
      PrunedTensor p;
      // The update leaves exactly the survivors nonzero: magnitude selection keeps them.
      p.data = compress_matrix(updated, rows, cols, {}, mo, name, &p.stats, &decoded, src);
      model.replace_weight(name, decoded);
      out.emplace(name, std::move(p));
    }
    each_batch(x, [&](const Batch& b, float* xs) { model.run_layer(l, b, xs); });
    if (progress) progress(l);
  }
  return out;
}

}  // namespace upg::compress
