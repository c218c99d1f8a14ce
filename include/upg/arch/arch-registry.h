#pragma once
// Architectures are data: one small file per architecture (arch-*.cpp) states every fact
// in which it differs from the shared Llama-style decoder, and io/, model/ and compress/
// look those facts up here. Shared code never switches on an architecture's name.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "upg/core/config.h"

namespace upg {

// The seven projections of a decoder layer, in the order the forward pass runs them.
enum class Proj : uint8_t { Q, K, V, O, Gate, Up, Down };
inline constexpr int kProjCount = 7;

// [rows, cols] of one projection for a config: Q [heads*head_dim, hidden], K and V
// [kv_heads*head_dim, hidden], O [hidden, heads*head_dim], Gate and Up [inter, hidden],
// Down [hidden, inter].
struct ProjShape {
  int64_t rows, cols;
};
ProjShape proj_shape(const ModelConfig& c, Proj p);

// One weight tensor of a layer, holding `count` consecutive projections from `first` as
// row ranges (a fused tensor holds several). Its Hugging Face name is
// "model.layers.N.<hf>.weight"; its GGUF name "blk.N.<gguf>.weight".
struct LayerTensor {
  const char* hf;    // e.g. "self_attn.qkv_proj"
  const char* gguf;  // e.g. "attn_qkv"
  Proj first;
  int count;
  bool bias;  // has "<hf>.bias" when the config's attention_bias is set
};
// Rows of a layer tensor: the sum of its projections' rows (they share their cols).
int64_t tensor_rows(const ModelConfig& c, const LayerTensor& t);

// The common layout: separate q/k/v/o and gate/up/down tensors, q/k/v biases allowed.
inline constexpr LayerTensor kSeparateProjections[] = {
    {"self_attn.q_proj", "attn_q", Proj::Q, 1, true},
    {"self_attn.k_proj", "attn_k", Proj::K, 1, true},
    {"self_attn.v_proj", "attn_v", Proj::V, 1, true},
    {"self_attn.o_proj", "attn_output", Proj::O, 1, false},
    {"mlp.gate_proj", "ffn_gate", Proj::Gate, 1, false},
    {"mlp.up_proj", "ffn_up", Proj::Up, 1, false},
    {"mlp.down_proj", "ffn_down", Proj::Down, 1, false},
};

// Where ModelConfig::attention_bias comes from.
enum class BiasRule : uint8_t {
  FromConfig,  // the "attention_bias" key (default false); the config writer writes it
  Always,      // always true, no key; a config saying otherwise is refused at load
  Never,       // always false, no key
};

// How config.json states the sliding window.
enum class WindowRule : uint8_t {
  IfSet,          // "sliding_window"; the config writer writes it only when there is one
  AlwaysWritten,  // "sliding_window"; the config writer writes it always (null for none)
  BehindSwitch,   // "sliding_window" counts only with "use_sliding_window": true
};

// An architecture file sets the names, its context default and the fields where it
// differs from these defaults (those of a Llama-style decoder).
struct ArchSpec {
  const char* hf_class = nullptr;    // config.json "architectures"[0], e.g. "LlamaForCausalLM"
  const char* model_type = nullptr;  // config.json "model_type" when absent; GGUF sources get it
  const char* gguf_name = nullptr;   // GGUF general.architecture; nullptr when its GGUF files say another
  // Defaults of the transformers config class, for configs that omit the key.
  int default_max_position_embeddings = 0;
  float default_rms_norm_eps = 1e-6f;
  BiasRule qkv_bias = BiasRule::FromConfig;
  WindowRule sliding_window = WindowRule::IfSet;
  bool writes_partial_rotary_factor = false;  // config writer: the key always, not only when != 1
  bool gguf_qk_permuted = false;              // llama.cpp permuted the Q/K rows for interleaved RoPE
  bool gguf_rope_freqs = false;               // llama3 rope scaling may come as rope_freqs.weight
  std::span<const LayerTensor> layout = kSeparateProjections;  // the layer's tensors, in Proj order
};

std::span<const ArchSpec* const> all_archs();
// By Hugging Face class name or GGUF general.architecture; nullptr when unknown.
const ArchSpec* arch_by_hf(std::string_view hf_class);
const ArchSpec* arch_by_gguf(std::string_view gguf_name);
// As above, but an unknown name throws upg::Error "<origin>: unsupported architecture
// 'X' (supported: ...)" listing the names that lookup knows.
const ArchSpec& find_arch(std::string_view hf_class, std::string_view origin = {});
const ArchSpec& find_gguf_arch(std::string_view gguf_name, std::string_view origin = {});
std::string supported_archs();  // the Hugging Face class names, comma-separated

}  // namespace upg
