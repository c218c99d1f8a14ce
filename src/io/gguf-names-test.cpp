#include "io/gguf-names.h"

#include <gtest/gtest.h>

#include "io/gguf-test-util.h"

namespace upg::io {
namespace {

TEST(GgufNames, MapsToHuggingFaceNames) {
  auto hf = [](std::string_view n, std::string_view arch = "llama") { return gguf_to_hf_name(n, arch).value_or("<none>"); };
  EXPECT_EQ(hf("token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(hf("output_norm.weight"), "model.norm.weight");
  EXPECT_EQ(hf("output.weight"), "lm_head.weight");
  EXPECT_EQ(hf("blk.0.attn_norm.weight"), "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(hf("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(hf("blk.3.attn_k.bias", "qwen2"), "model.layers.3.self_attn.k_proj.bias");
  EXPECT_EQ(hf("blk.3.attn_v.weight"), "model.layers.3.self_attn.v_proj.weight");
  EXPECT_EQ(hf("blk.3.attn_output.weight"), "model.layers.3.self_attn.o_proj.weight");
  EXPECT_EQ(hf("blk.29.ffn_norm.weight"), "model.layers.29.post_attention_layernorm.weight");
  EXPECT_EQ(hf("blk.1.ffn_gate.weight"), "model.layers.1.mlp.gate_proj.weight");
  EXPECT_EQ(hf("blk.1.ffn_up.weight"), "model.layers.1.mlp.up_proj.weight");
  EXPECT_EQ(hf("blk.1.ffn_down.weight"), "model.layers.1.mlp.down_proj.weight");
  EXPECT_EQ(hf("blk.1.attn_qkv.weight", "phi3"), "model.layers.1.self_attn.qkv_proj.weight");
  EXPECT_EQ(hf("blk.1.ffn_up.weight", "phi3"), "model.layers.1.mlp.gate_up_proj.weight");
  EXPECT_EQ(hf("rope_freqs.weight"), "<none>");
  EXPECT_EQ(hf("rope_factors_long.weight", "phi3"), "<none>");
  // Unknown names pass through rather than being dropped silently.
  EXPECT_EQ(hf("blk.x.attn_q.weight"), "blk.x.attn_q.weight");
  EXPECT_EQ(hf("blk.1.mystery.weight"), "blk.1.mystery.weight");
  EXPECT_EQ(hf("weird"), "weird");
}

// llama.cpp convert_hf_to_gguf.py LlamaModel.permute, written as the numpy ops it uses:
// w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape(rows, cols).
std::vector<int> llama_cpp_permute(const std::vector<int>& w, int rows, int cols, int n_head) {
  const int half = rows / n_head / 2;
  std::vector<int> out(w.size());
  // After swapaxes the array has shape (n_head, half, 2, cols); walk it in row-major order.
  size_t k = 0;
  for (int h = 0; h < n_head; ++h)
    for (int i = 0; i < half; ++i)
      for (int two = 0; two < 2; ++two)
        for (int c = 0; c < cols; ++c) out[k++] = w[size_t(((h * 2 + two) * half + i) * cols + c)];
  return out;
}

std::vector<int> apply_rows(const std::vector<int>& w, int cols, const std::vector<int64_t>& map) {
  std::vector<int> out(w.size());
  for (size_t r = 0; r < map.size(); ++r)
    for (int c = 0; c < cols; ++c) out[r * size_t(cols) + size_t(c)] = w[size_t(map[r]) * size_t(cols) + size_t(c)];
  return out;
}

TEST(GgufNames, HandWorkedPermutation) {
  // Two heads of head_dim 4: each head's rows [a0 a1 b0 b1] become [a0 b0 a1 b1] in GGUF.
  EXPECT_EQ(qk_permute_rows(8, 2), (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_EQ(qk_unpermute_rows(8, 2), (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_EQ(qk_unpermute_rows(8, 1), (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7}));
}

TEST(GgufNames, UnpermuteUndoesLlamaCppPermute) {
  for (auto [rows, cols, n_head] : {std::tuple{8, 3, 2}, {12, 2, 3}, {64, 5, 4}, {576, 1, 9}, {192, 2, 3}}) {
    std::vector<int> hf(size_t(rows * cols));
    for (size_t i = 0; i < hf.size(); ++i) hf[i] = int(i);
    std::vector<int> gguf = llama_cpp_permute(hf, rows, cols, n_head);
    EXPECT_NE(gguf, hf);
    EXPECT_EQ(apply_rows(gguf, cols, qk_unpermute_rows(rows, n_head)), hf) << rows << " rows, " << n_head << " heads";
    EXPECT_EQ(apply_rows(hf, cols, qk_permute_rows(rows, n_head)), gguf);
  }
}

TEST(GgufNames, PermutationRejectsOddHeads) {
  gguf_test::expect_error([] { qk_unpermute_rows(10, 4); }, {"10 rows", "4 heads"});
  gguf_test::expect_error([] { qk_unpermute_rows(9, 3); }, {"9 rows", "3 heads"});
}

}  // namespace
}  // namespace upg::io
