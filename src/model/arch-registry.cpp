#include "model/arch-registry.h"

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

// Defined one per file (arch-*.cpp). A table rather than static self-registration:
// objects in a static library that nothing references are dropped by the linker.
const ArchSpec& arch_llama();
const ArchSpec& arch_mistral();
const ArchSpec& arch_qwen2();
const ArchSpec& arch_phi3();

namespace {
const ArchSpec* const* archs() {
  static const ArchSpec* const table[] = {&arch_llama(), &arch_mistral(), &arch_qwen2(), &arch_phi3(), nullptr};
  return table;
}
}  // namespace

std::string supported_archs() {
  std::string s;
  for (auto* a = archs(); *a; ++a) s += (s.empty() ? "" : ", ") + std::string((*a)->name);
  return s;
}

const ArchSpec& find_arch(const std::string& name) {
  for (auto* a = archs(); *a; ++a)
    if (name == (*a)->name) return **a;
  throw Error(fmt::format("unsupported architecture '{}' (supported: {})", name, supported_archs()));
}

void bind_separate_projections(WeightBinder& b, const std::string& p, LayerWeights& lw) {
  const ModelConfig& c = b.config();
  const int64_t hidden = c.hidden_size, q_dim = int64_t(c.num_heads) * c.head_dim,
                kv_dim = int64_t(c.num_kv_heads) * c.head_dim, inter = c.intermediate_size;
  auto bias = [&](const char* proj) { return c.attention_bias ? p + "self_attn." + proj + ".bias" : std::string(); };
  lw.q = b.linear(p + "self_attn.q_proj.weight", q_dim, hidden, bias("q_proj"));
  lw.k = b.linear(p + "self_attn.k_proj.weight", kv_dim, hidden, bias("k_proj"));
  lw.v = b.linear(p + "self_attn.v_proj.weight", kv_dim, hidden, bias("v_proj"));
  lw.o = b.linear(p + "self_attn.o_proj.weight", hidden, q_dim);
  lw.gate = b.linear(p + "mlp.gate_proj.weight", inter, hidden);
  lw.up = b.linear(p + "mlp.up_proj.weight", inter, hidden);
  lw.down = b.linear(p + "mlp.down_proj.weight", hidden, inter);
}

}  // namespace upg
