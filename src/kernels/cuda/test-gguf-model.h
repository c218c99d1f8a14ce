#pragma once
// A Llama-shaped GGUF of random weights (normal, std 0.02, seeded), its linear weights in
// F16, Q8_0 or Q4_0 (compress/ggml-quantize.h), for the CUDA tests and benchmarks: the GPU
// machine cannot fetch the default model, and unlike `upg synth --gguf` this one's tied
// embedding has a larger spread, so greedy decoding has clear winners to compare. No
// tokenizer: the tests feed token ids.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compress/ggml-quantize.h"
#include "compress/synth.h"
#include "io/gguf-reader.h"
#include "upg/io/gguf-writer.h"
#include "upg/core/tensor.h"

namespace upg::test {

struct LlamaShape {
  int vocab = 49152, hidden = 576, layers = 30, heads = 9, kv_heads = 3, inter = 1536, ctx = 8192;
  float rope_theta = 100000.0f;
};

inline std::vector<std::byte> ggml_rows(const std::vector<float>& f, uint32_t type) {
  std::vector<std::byte> out(compress::ggml_bytes(type, int64_t(f.size())));
  compress::quantize_ggml_rows(type, f.data(), int64_t(f.size()), out);
  return out;
}

// Writes the model to `path`; linear weights and the (tied) embedding in `type`
// (io::GGML_F16, GGML_Q8_0 or GGML_Q4_0), norms in F32.
inline void write_llama_gguf(const std::string& path, const LlamaShape& s, uint32_t type, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.02f);
  auto random = [&](size_t n, float mean = 0.0f) {
    std::vector<float> v(n);
    for (auto& x : v) x = mean + g(rng);
    return v;
  };
  io::GgufWriter w;
  ModelConfig c;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.inter;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.vocab_size = s.vocab;
  c.max_position_embeddings = s.ctx;
  c.rope_theta = s.rope_theta;
  compress::set_gguf_model_keys(w, "llama", c);
  const uint64_t H = uint64_t(s.hidden), hd = H / uint64_t(s.heads), kvd = hd * uint64_t(s.kv_heads),
                 I = uint64_t(s.inter);
  auto linear = [&](const std::string& name, uint64_t rows, uint64_t cols) {
    w.add_tensor(name, type, {cols, rows}, ggml_rows(random(size_t(rows * cols)), type));
  };
  auto norm = [&](const std::string& name) { w.add_f32(name, {H}, random(size_t(H), 1.0f)); };
  // The embedding is the LM head too (tied, as SmolLM2's); a larger spread than the
  // decoder's keeps its logits apart, so greedy decoding has clear winners.
  std::normal_distribution<float> ge(0.0f, 1.0f);
  std::vector<float> embed(size_t(s.vocab) * H);
  for (auto& x : embed) x = ge(rng);
  w.add_tensor("token_embd.weight", type, {H, uint64_t(s.vocab)}, ggml_rows(embed, type));
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    linear(p + "attn_q.weight", H, H);
    linear(p + "attn_k.weight", kvd, H);
    linear(p + "attn_v.weight", kvd, H);
    linear(p + "attn_output.weight", H, H);
    norm(p + "ffn_norm.weight");
    linear(p + "ffn_gate.weight", I, H);
    linear(p + "ffn_up.weight", I, H);
    linear(p + "ffn_down.weight", H, I);
  }
  norm("output_norm.weight");
  w.write(path);
}

}  // namespace upg::test
