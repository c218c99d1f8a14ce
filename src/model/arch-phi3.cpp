// Phi-3 and Phi-4 (Phi3ForCausalLM): q/k/v fused into qkv_proj and gate/up into
// gate_up_proj. Rows of a row-major weight are contiguous, so the fused tensors are bound
// as row ranges and the shared forward pass never knows they were fused.
#include "model/arch-registry.h"

namespace upg {

namespace {
void bind_fused(WeightBinder& b, const std::string& p, LayerWeights& lw) {
  const ModelConfig& c = b.config();
  const int64_t hidden = c.hidden_size, q_dim = int64_t(c.num_heads) * c.head_dim,
                kv_dim = int64_t(c.num_kv_heads) * c.head_dim, inter = c.intermediate_size;
  const std::string qkv = p + "self_attn.qkv_proj.weight";
  const int64_t qkv_rows = q_dim + 2 * kv_dim;
  lw.q = b.linear_rows(qkv, qkv_rows, hidden, 0, q_dim);
  lw.k = b.linear_rows(qkv, qkv_rows, hidden, q_dim, kv_dim);
  lw.v = b.linear_rows(qkv, qkv_rows, hidden, q_dim + kv_dim, kv_dim);
  lw.o = b.linear(p + "self_attn.o_proj.weight", hidden, q_dim);
  const std::string gate_up = p + "mlp.gate_up_proj.weight";
  lw.gate = b.linear_rows(gate_up, 2 * inter, hidden, 0, inter);
  lw.up = b.linear_rows(gate_up, 2 * inter, hidden, inter, inter);
  lw.down = b.linear(p + "mlp.down_proj.weight", hidden, inter);
}
}  // namespace

const ArchSpec& arch_phi3() {
  static const ArchSpec spec{"Phi3ForCausalLM", bind_fused, nullptr};
  return spec;
}

}  // namespace upg
