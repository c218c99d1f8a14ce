// Qwen2: the Llama layout with q/k/v biases, which it always has whatever the config says.
#include "model/arch-registry.h"

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

namespace {
void check(const ModelConfig& c) {
  if (!c.attention_bias) throw Error("Qwen2ForCausalLM: attention_bias must be true (Qwen2 has q/k/v biases)");
}
}  // namespace

const ArchSpec& arch_qwen2() {
  static const ArchSpec spec{"Qwen2ForCausalLM", bind_separate_projections, check};
  return spec;
}

}  // namespace upg
