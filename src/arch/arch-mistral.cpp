// Mistral: the Llama layout; its sliding window comes through the config. llama.cpp
// stores Mistral models as "llama", so GGUF files of it load through arch-llama.cpp.
#include "arch/arch-registry.h"

namespace upg {

const ArchSpec& arch_mistral() {
  static constexpr ArchSpec spec{
      .hf_class = "MistralForCausalLM",
      .model_type = "mistral",
      .gguf_name = nullptr,
      .default_max_position_embeddings = 32768,
      .default_rms_norm_eps = 1e-6f,
      .qkv_bias = BiasRule::FromConfig,
      .sliding_window = WindowRule::AlwaysWritten,
      .writes_partial_rotary_factor = false,
      .gguf_qk_permuted = false,
      .gguf_rope_freqs = false,
      .layout = kSeparateProjections,
  };
  return spec;
}

}  // namespace upg
