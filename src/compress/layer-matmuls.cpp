#include "compress/layer-matmuls.h"

#include <algorithm>

#include <fmt/format.h>

#include "compress/blas.h"
#include "upg/core/error.h"

namespace upg::compress {

LayerMatmuls::LayerMatmuls(Model& model, size_t tokens, int threads)
    : model_(model), tokens_(tokens), threads_(threads) {
  model_.set_matmul_override(
      [this](const LinearWeight& w, const float* x, int64_t n, float* y) { return run(w, x, n, y); },
      [this](const LinearWeight& w) { return known(w); });
}

LayerMatmuls::~LayerMatmuls() { model_.set_matmul_override(nullptr); }

void LayerMatmuls::new_layer() {
  settled_.clear();
  kept_.clear();
}

void LayerMatmuls::new_pass(bool keep) {
  keep_ = keep;
  for (auto it = kept_.begin(); it != kept_.end();) {
    Kept& k = it->second;
    // A pass stopped before a weight's every token leaves nothing usable of it.
    if (!k.whole && (k.at != tokens_ || k.y.empty())) {
      it = kept_.erase(it);
      continue;
    }
    k.whole = true;
    k.at = 0;
    ++it;
  }
}

void LayerMatmuls::settle(const std::string& name) { settled_.insert(name); }

bool LayerMatmuls::known(const LinearWeight& w) const {
  if (w.compressed || w.dtype != DType::F32 || !settled_.contains(std::string_view(w.name))) return false;
  auto it = kept_.find(w.data);
  return it != kept_.end() && it->second.whole;
}

bool LayerMatmuls::run(const LinearWeight& w, const float* x, int64_t n, float* y) {
  if (w.compressed || w.dtype != DType::F32 || n <= 0) return false;
  const size_t len = size_t(n) * size_t(w.rows);
  const bool settled = settled_.contains(std::string_view(w.name));
  if (known(w)) {
    Kept& k = kept_.find(w.data)->second;
    if (k.at + size_t(n) > tokens_)
      throw Error(fmt::format("calibration: {} ran on more than the {} calibration tokens", w.name, tokens_));
    std::copy_n(k.y.data() + k.at * size_t(w.rows), len, y);
    k.at += size_t(n);
    return true;
  }
  if (!x) throw Error(fmt::format("calibration: {} has no input and no kept outputs", w.name));
  if (w.bias)
    for (int64_t t = 0; t < n; ++t) std::copy_n(w.bias, w.rows, y + t * w.rows);
  computed_ += n * w.rows;
  blas::set_threads(threads_);
  blas::gemm_nt(y, x, static_cast<const float*>(w.data), n, w.rows, w.cols, w.bias ? 1.0f : 0.0f);
  if (settled && keep_) {
    Kept& k = kept_[w.data];
    if (k.y.empty()) k.y.resize(tokens_ * size_t(w.rows));
    if (k.at + size_t(n) <= tokens_) std::copy_n(y, len, k.y.data() + k.at * size_t(w.rows));
    k.at += size_t(n);
  }
  return true;
}

}  // namespace upg::compress
