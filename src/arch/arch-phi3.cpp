// Phi-3 and Phi-4 (Phi3ForCausalLM): q/k/v fused into qkv_proj and gate/up into
// gate_up_proj. Rows of a row-major weight are contiguous, so the fused tensors are bound
// as row ranges and the shared forward pass never knows they were fused. llama.cpp calls
// gate_up_proj "ffn_up".
#include "upg/arch/arch-registry.h"

namespace upg {

namespace {
constexpr LayerTensor kFused[] = {
    {"self_attn.qkv_proj", "attn_qkv", Proj::Q, 3, false},
    {"self_attn.o_proj", "attn_output", Proj::O, 1, false},
    {"mlp.gate_up_proj", "ffn_up", Proj::Gate, 2, false},
    {"mlp.down_proj", "ffn_down", Proj::Down, 1, false},
};
}  // namespace

const ArchSpec& arch_phi3() {
  static constexpr ArchSpec spec{
      .hf_class = "Phi3ForCausalLM",
      .model_type = "phi3",
      .gguf_name = "phi3",
      .default_max_position_embeddings = 4096,
      .default_rms_norm_eps = 1e-5f,
      .qkv_bias = BiasRule::Never,
      .sliding_window = WindowRule::AlwaysWritten,
      .writes_partial_rotary_factor = true,
      .layout = kFused,
  };
  return spec;
}

}  // namespace upg
