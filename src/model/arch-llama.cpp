// Llama (and SmolLM2, which is a Llama with tied embeddings): the shared layout as is.
#include "model/arch-registry.h"

namespace upg {

const ArchSpec& arch_llama() {
  static const ArchSpec spec{"LlamaForCausalLM", bind_separate_projections, nullptr};
  return spec;
}

}  // namespace upg
