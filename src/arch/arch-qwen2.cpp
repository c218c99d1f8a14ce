// Qwen2: the Llama layout with q/k/v biases, which it always has whatever the config
// says; its configs carry a sliding_window that counts only with use_sliding_window.
#include "upg/arch/arch-registry.h"

namespace upg {

const ArchSpec& arch_qwen2() {
  static constexpr ArchSpec spec{
      .hf_class = "Qwen2ForCausalLM",
      .model_type = "qwen2",
      .gguf_name = "qwen2",
      .default_max_position_embeddings = 32768,
      .qkv_bias = BiasRule::Always,
      .sliding_window = WindowRule::BehindSwitch,
  };
  return spec;
}

}  // namespace upg
