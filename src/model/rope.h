#pragma once
#include <vector>

#include "upg/kernels/backend.h"
#include "upg/core/config.h"

namespace upg {

// Owns the cos/sin tables a RopeTable points into.
struct RopeCache {
  RopeCache() = default;
  RopeCache(RopeCache&&) = default;  // vectors move their buffers: table stays valid
  RopeCache& operator=(RopeCache&&) = default;
  RopeCache(const RopeCache&) = delete;
  std::vector<float> inv_freq;  // [rotary_dim / 2], after scaling
  std::vector<float> cos, sin;  // [max_positions, rotary_dim / 2]
  RopeTable table;
};

// Frequencies as Hugging Face computes them (fp32 inv_freq, fp32 angle = pos * inv_freq)
// for rope scaling none, linear, llama3 and longrope; other types throw upg::Error.
RopeCache build_rope(const ModelConfig& cfg, int max_positions);

}  // namespace upg
