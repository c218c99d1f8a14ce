#pragma once
// A Llama-shaped GGUF of random weights (normal, std 0.02, seeded), its linear weights in
// F16, Q8_0 or Q4_0, for the CUDA tests and benchmarks: `upg synth` writes only UPG
// compressed layouts, which the CUDA backend does not run yet, and the GPU machine cannot
// fetch the default model. The quantizers follow ggml's reference ones (quantize_row_q8_0
// and q4_0: d = absmax / 127, and d = (signed max) / -8); hand-written because nothing
// in the project writes GGUF blocks. No tokenizer: the tests feed token ids.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "io/gguf-reader.h"
#include "io/gguf-writer.h"
#include "upg/core/tensor.h"

namespace upg::test {

struct LlamaShape {
  int vocab = 49152, hidden = 576, layers = 30, heads = 9, kv_heads = 3, inter = 1536, ctx = 8192;
  float rope_theta = 100000.0f;
};

inline std::vector<std::byte> ggml_rows(const std::vector<float>& f, uint32_t type) {
  std::vector<std::byte> out;
  auto put = [&](const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out.insert(out.end(), b, b + n);
  };
  if (type == io::GGML_F16) {
    for (float v : f) {
      const uint16_t h = fp32_to_fp16(v);
      put(&h, 2);
    }
    return out;
  }
  for (size_t b = 0; b < f.size(); b += 32) {
    const float* x = f.data() + b;
    if (type == io::GGML_Q8_0) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
      const uint16_t dh = fp32_to_fp16(d);
      put(&dh, 2);
      for (int i = 0; i < 32; ++i) {
        const int8_t q = int8_t(std::lround(x[i] * id));
        put(&q, 1);
      }
    } else {  // Q4_0
      float amax = 0, max = 0;
      for (int i = 0; i < 32; ++i)
        if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
      const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
      const uint16_t dh = fp32_to_fp16(d);
      put(&dh, 2);
      for (int i = 0; i < 16; ++i) {
        const int lo = std::min(15, int(x[i] * id + 8.5f)), hi = std::min(15, int(x[i + 16] * id + 8.5f));
        const uint8_t q = uint8_t(lo | (hi << 4));
        put(&q, 1);
      }
    }
  }
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
  const std::string a = "llama";
  w.set_string("general.architecture", a);
  w.set_string("general.name", "random llama");
  w.set_u32(a + ".context_length", uint32_t(s.ctx));
  w.set_u32(a + ".embedding_length", uint32_t(s.hidden));
  w.set_u32(a + ".block_count", uint32_t(s.layers));
  w.set_u32(a + ".feed_forward_length", uint32_t(s.inter));
  w.set_u32(a + ".attention.head_count", uint32_t(s.heads));
  w.set_u32(a + ".attention.head_count_kv", uint32_t(s.kv_heads));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_f32(a + ".rope.freq_base", s.rope_theta);
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
