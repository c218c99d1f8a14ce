#pragma once
// Typed model hyper-parameters. io/ builds this from config.json or GGUF metadata;
// model/ consumes it and never parses files.
#include <cstdint>
#include <string>
#include <vector>

namespace upg {

struct RopeScaling {
  // "none", "linear", "dynamic", "llama3", "yarn", "longrope" (Phi-3 "su" maps here).
  std::string type = "none";
  float factor = 1.0f;
  // llama3
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 0;
  // longrope: per-dimension factors (head_dim * partial_rotary_factor / 2 entries)
  std::vector<float> short_factor, long_factor;
};

struct ModelConfig {
  std::string architecture;  // Hugging Face class name, e.g. "LlamaForCausalLM"
  std::string model_type;    // config.json "model_type", e.g. "llama", "qwen2", "phi3"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // hidden_size / num_heads unless config says otherwise
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  float partial_rotary_factor = 1.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always has them)
  std::string hidden_act = "silu";
  int sliding_window = 0;  // 0: full attention
  // Q and K rows of each head are in llama.cpp's order, where the two dims RoPE rotates
  // together are adjacent (2i, 2i + 1) rather than half a rotary span apart (i, i +
  // rotary_dim / 2): set by the GGUF loader when it leaves such rows as stored
  // (LoadOptions::keep_gguf_qk_rows), and then RoPE rotates adjacent pairs.
  bool rope_interleaved = false;
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;
};

}  // namespace upg
