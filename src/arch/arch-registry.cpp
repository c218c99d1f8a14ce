#include "upg/arch/arch-registry.h"

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

// Defined one per file (arch-*.cpp). A table rather than static self-registration:
// objects in a static library that nothing references are dropped by the linker.
const ArchSpec& arch_llama();
const ArchSpec& arch_mistral();
const ArchSpec& arch_qwen2();
const ArchSpec& arch_phi3();

std::span<const ArchSpec* const> all_archs() {
  static const ArchSpec* const table[] = {&arch_llama(), &arch_mistral(), &arch_qwen2(), &arch_phi3()};
  return table;
}

namespace {

const ArchSpec* by(const char* ArchSpec::*key, std::string_view name) {
  for (const ArchSpec* a : all_archs())
    if (a->*key && name == a->*key) return a;
  return nullptr;
}

std::string names(const char* ArchSpec::*key) {
  std::string s;
  for (const ArchSpec* a : all_archs())
    if (a->*key) s += (s.empty() ? "" : ", ") + std::string(a->*key);
  return s;
}

const ArchSpec& find_by(const char* ArchSpec::*key, std::string_view name, std::string_view origin) {
  if (const ArchSpec* a = by(key, name)) return *a;
  throw Error(fmt::format("{}{}unsupported architecture '{}' (supported: {})", origin, origin.empty() ? "" : ": ",
                          name, names(key)));
}

}  // namespace

const ArchSpec* arch_by_hf(std::string_view hf_class) { return by(&ArchSpec::hf_class, hf_class); }
const ArchSpec* arch_by_gguf(std::string_view gguf_name) { return by(&ArchSpec::gguf_name, gguf_name); }

const ArchSpec& find_arch(std::string_view hf_class, std::string_view origin) {
  return find_by(&ArchSpec::hf_class, hf_class, origin);
}
const ArchSpec& find_gguf_arch(std::string_view gguf_name, std::string_view origin) {
  return find_by(&ArchSpec::gguf_name, gguf_name, origin);
}

std::string supported_archs() { return names(&ArchSpec::hf_class); }

ProjShape proj_shape(const ModelConfig& c, Proj p) {
  const int64_t hidden = c.hidden_size, q_dim = int64_t(c.num_heads) * c.head_dim,
                kv_dim = int64_t(c.num_kv_heads) * c.head_dim, inter = c.intermediate_size;
  switch (p) {
    case Proj::Q: return {q_dim, hidden};
    case Proj::K:
    case Proj::V: return {kv_dim, hidden};
    case Proj::O: return {hidden, q_dim};
    case Proj::Gate:
    case Proj::Up: return {inter, hidden};
    case Proj::Down: return {hidden, inter};
  }
  throw Error(fmt::format("projection {} does not exist", int(p)));
}

int64_t tensor_rows(const ModelConfig& c, const LayerTensor& t) {
  int64_t rows = 0;
  for (int i = 0; i < t.count; ++i) rows += proj_shape(c, Proj(int(t.first) + i)).rows;
  return rows;
}

}  // namespace upg
