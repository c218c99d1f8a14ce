#pragma once
// The model's weights as the forward passes see them: views into the WeightStore, with
// small vectors (norms, biases) converted to fp32 once at load.
#include <string>
#include <vector>

#include "upg/backend.h"
#include "upg/config.h"
#include "upg/tensor.h"

namespace upg {

struct LayerWeights {
  const float* attn_norm = nullptr;  // [hidden]
  const float* mlp_norm = nullptr;   // [hidden]
  LinearWeight q, k, v, o;           // [H*hd, hidden], [KV*hd, hidden] x2, [hidden, H*hd]
  LinearWeight gate, up, down;       // [inter, hidden] x2, [hidden, inter]
};

struct ModelWeights {
  LinearWeight embed;    // [vocab, hidden]
  LinearWeight lm_head;  // [vocab, hidden]; the embedding when tied
  const float* final_norm = nullptr;
  std::vector<LayerWeights> layers;
};

// Checked access to the store for architecture binders: every getter validates the
// tensor's shape against the config and names the tensor in its error.
class WeightBinder {
 public:
  WeightBinder(WeightStore& store, const ModelConfig& cfg) : store_(store), cfg_(cfg) {}
  const ModelConfig& config() const { return cfg_; }
  bool has(const std::string& name) const { return store_.contains(name); }
  // A [rows, cols] linear weight, optionally with a [rows] bias named `bias_name`.
  LinearWeight linear(const std::string& name, int64_t rows, int64_t cols, const std::string& bias_name = "");
  // Rows [row0, row0 + rows) of a fused [total_rows, cols] weight (and its bias).
  LinearWeight linear_rows(const std::string& name, int64_t total_rows, int64_t cols, int64_t row0, int64_t rows,
                           const std::string& bias_name = "");
  // A [n] vector as fp32 (converted once if stored as F16/BF16).
  const float* vector(const std::string& name, int64_t n);

 private:
  const TensorView& expect(const std::string& name, std::vector<int64_t> shape);
  WeightStore& store_;
  const ModelConfig& cfg_;
};

// Binds the non-layer weights and every layer through the architecture's binder.
ModelWeights bind_weights(WeightStore& store, const ModelConfig& cfg);

}  // namespace upg
