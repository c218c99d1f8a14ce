// Mistral: the Llama layout; its sliding window comes through the config.
#include "model/arch-registry.h"

namespace upg {

const ArchSpec& arch_mistral() {
  static const ArchSpec spec{"MistralForCausalLM", bind_separate_projections, nullptr};
  return spec;
}

}  // namespace upg
