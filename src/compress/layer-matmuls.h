#pragma once
// The calibration model's fp32 products for layer-by-layer SparseGPT: through OpenBLAS
// (sgemm runs these shapes at about twice the engine's fp32 tiles, docs/BENCHMARKS.md),
// and the outputs of a layer's weights that can no longer change kept from one pass over
// the calibration tokens to the next, so each pass computes only what is new.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "upg/model/model.h"

namespace upg::compress {

class LayerMatmuls {
 public:
  // Installed as `model`'s matmul override for its lifetime; `tokens` calibration tokens
  // per pass, OpenBLAS on `threads` threads.
  LayerMatmuls(Model& model, size_t tokens, int threads);
  ~LayerMatmuls();
  LayerMatmuls(const LayerMatmuls&) = delete;
  LayerMatmuls& operator=(const LayerMatmuls&) = delete;

  // A new layer: its input changed, so nothing kept holds.
  void new_layer();
  // A new pass over all the calibration tokens, in the same batches as every pass. With
  // `keep` the outputs of settled weights computed in it are kept for the passes after.
  void new_pass(bool keep = true);
  // The weight `name` of the current layer was replaced by its compressed form. Its input
  // depends only on the layer's input and on the weights before it, which the groups'
  // order settled earlier, so from now on its outputs are the same in every pass.
  void settle(const std::string& name);
  // Output rows it computed so far (tokens x rows summed over calls), kept ones not counted.
  int64_t computed() const { return computed_; }

 private:
  bool run(const LinearWeight& w, const float* x, int64_t n, float* y);
  bool known(const LinearWeight& w) const;
  struct Kept {
    std::vector<float> y;  // [tokens, rows] once whole
    size_t at = 0;         // the next token this pass
    bool whole = false;    // filled by an earlier pass
  };
  Model& model_;
  size_t tokens_;
  int threads_;
  bool keep_ = true;
  int64_t computed_ = 0;
  std::set<std::string, std::less<>> settled_;
  std::map<const void*, Kept> kept_;  // by the weight's data: row slices of a fused weight apart
};

}  // namespace upg::compress
