// Llama (and SmolLM2, which is a Llama with tied embeddings): the shared layout as is.
// Defaults are those of transformers' LlamaConfig.
#include "upg/arch/arch-registry.h"

namespace upg {

const ArchSpec& arch_llama() {
  static constexpr ArchSpec spec{
      .hf_class = "LlamaForCausalLM",
      .model_type = "llama",
      .gguf_name = "llama",
      .default_max_position_embeddings = 2048,
      .gguf_qk_permuted = true,
      .gguf_rope_freqs = true,
  };
  return spec;
}

}  // namespace upg
