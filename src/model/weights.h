#pragma once
// The model's weights as the forward passes see them: views into the WeightStore, with
// small vectors (norms, biases) converted to fp32 once at load.
#include <deque>
#include <string>
#include <vector>

#include "upg/arch/arch-registry.h"
#include "upg/kernels/backend.h"
#include "upg/core/config.h"
#include "upg/io/io.h"
#include "upg/core/tensor.h"

namespace upg {

struct LayerWeights {
  const float* attn_norm = nullptr;  // [hidden]
  const float* mlp_norm = nullptr;   // [hidden]
  LinearWeight q, k, v, o;           // [H*hd, hidden], [KV*hd, hidden] x2, [hidden, H*hd]
  LinearWeight gate, up, down;       // [inter, hidden] x2, [hidden, inter]
};

// The seven projections as members, indexed by Proj: the one list that binding, prepare
// and the load checks walk.
inline constexpr LinearWeight LayerWeights::* kProjections[kProjCount] = {
    &LayerWeights::q, &LayerWeights::k, &LayerWeights::v, &LayerWeights::o,
    &LayerWeights::gate, &LayerWeights::up, &LayerWeights::down};

struct ModelWeights {
  LinearWeight embed;    // [vocab, hidden]
  LinearWeight lm_head;  // [vocab, hidden]; the embedding when tied
  const float* final_norm = nullptr;
  std::vector<LayerWeights> layers;
  std::deque<format::CompressedMatrix> slices;  // row ranges of fused compressed weights
};

// Checked access to the store for weight binding: every getter validates the tensor's
// shape against the config and names the tensor in its error.
class WeightBinder {
 public:
  WeightBinder(ModelSource& src, ModelWeights& out)
      : store_(src.weights), compressed_(src.compressed), cfg_(src.config), out_(out) {}
  const ModelConfig& config() const { return cfg_; }
  bool has(const std::string& name) const {
    return store_.contains(name) || compressed_.count(name) > 0 || store_.contains(name + ".qweight");
  }
  // A [rows, cols] linear weight, optionally with a [rows] bias named `bias_name`. Stored
  // dense (F32/F16/BF16 under `name`), compressed (ModelSource::compressed[name]) or as
  // dense int8: "<name>.qweight" I8 [rows, cols] with "<name>.scales" [rows].
  LinearWeight linear(const std::string& name, int64_t rows, int64_t cols, const std::string& bias_name = "");
  // Rows [row0, row0 + rows) of a fused [total_rows, cols] weight (and its bias).
  LinearWeight linear_rows(const std::string& name, int64_t total_rows, int64_t cols, int64_t row0, int64_t rows,
                           const std::string& bias_name = "");
  // A [n] vector as fp32 (converted once if stored as F16/BF16).
  const float* vector(const std::string& name, int64_t n);

 private:
  const TensorView& expect(const std::string& name, std::vector<int64_t> shape);
  LinearWeight int8_rows(const std::string& name, int64_t total_rows, int64_t cols, int64_t row0, int64_t rows);
  WeightStore& store_;
  const std::map<std::string, format::CompressedMatrix, std::less<>>& compressed_;
  const ModelConfig& cfg_;
  ModelWeights& out_;
};

// Binds the non-layer weights and every layer through the architecture's layout
// (upg/arch/arch-registry.h). The result points into `src`, which must outlive it.
ModelWeights bind_weights(ModelSource& src);

}  // namespace upg
