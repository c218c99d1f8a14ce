// Mistral: the Llama layout; its sliding window comes through the config. llama.cpp
// stores Mistral models as "llama", so GGUF files of it load through arch-llama.cpp.
#include "upg/arch/arch-registry.h"

namespace upg {

const ArchSpec& arch_mistral() {
  static constexpr ArchSpec spec{
      .hf_class = "MistralForCausalLM",
      .model_type = "mistral",
      .default_max_position_embeddings = 32768,
      .sliding_window = WindowRule::AlwaysWritten,
  };
  return spec;
}

}  // namespace upg
