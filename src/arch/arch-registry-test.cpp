#include "upg/arch/arch-registry.h"

#include <functional>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "upg/core/error.h"

namespace upg {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// Every dimension different, so a projection given the wrong shape shows.
ModelConfig odd_config() {
  ModelConfig c;
  c.hidden_size = 64;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 24;  // q_dim 96, kv_dim 48
  c.intermediate_size = 160;
  return c;
}

TEST(ArchRegistry, EveryEntryIsComplete) {
  const ModelConfig c = odd_config();
  std::set<std::string> hf_names, gguf_names;
  ASSERT_FALSE(all_archs().empty());
  for (const ArchSpec* a : all_archs()) {
    ASSERT_NE(a, nullptr);
    ASSERT_NE(a->hf_class, nullptr);
    SCOPED_TRACE(a->hf_class);
    EXPECT_TRUE(hf_names.insert(a->hf_class).second) << "HF class listed twice";
    if (a->gguf_name) {
      EXPECT_TRUE(gguf_names.insert(a->gguf_name).second) << "GGUF name listed twice";
      EXPECT_EQ(&find_gguf_arch(a->gguf_name), a);
    }
    ASSERT_NE(a->model_type, nullptr);
    EXPECT_NE(std::string(a->model_type), "");
    EXPECT_GT(a->default_max_position_embeddings, 0);
    EXPECT_GT(a->default_rms_norm_eps, 0.0f);
    EXPECT_EQ(&find_arch(a->hf_class), a);
    EXPECT_NE(supported_archs().find(a->hf_class), std::string::npos);

    // The layout holds each of the seven projections once, in Proj order; the
    // projections of one tensor share their input width, so their rows can stack.
    int next = 0;
    bool any_bias = false;
    std::set<std::string> tensors;
    for (const LayerTensor& t : a->layout) {
      ASSERT_NE(t.hf, nullptr);
      ASSERT_NE(t.gguf, nullptr);
      EXPECT_TRUE(tensors.insert(t.hf).second) << t.hf;
      EXPECT_EQ(int(t.first), next) << t.hf;
      ASSERT_GE(t.count, 1) << t.hf;
      int64_t rows = 0;
      for (int i = 0; i < t.count; ++i) {
        const ProjShape s = proj_shape(c, Proj(next + i));
        EXPECT_EQ(s.cols, proj_shape(c, t.first).cols) << t.hf;
        rows += s.rows;
      }
      EXPECT_EQ(tensor_rows(c, t), rows);
      next += t.count;
      any_bias |= t.bias;
    }
    EXPECT_EQ(next, kProjCount);
    // A rule that promises biases needs a tensor to hold them; one that forbids them none.
    if (a->qkv_bias != BiasRule::FromConfig) {
      EXPECT_EQ(any_bias, a->qkv_bias == BiasRule::Always);
    }
  }
}

TEST(ArchRegistry, Shapes) {
  const ModelConfig c = odd_config();
  EXPECT_EQ(proj_shape(c, Proj::Q).rows, 96);
  EXPECT_EQ(proj_shape(c, Proj::K).rows, 48);
  EXPECT_EQ(proj_shape(c, Proj::O).cols, 96);
  EXPECT_EQ(proj_shape(c, Proj::Down).cols, 160);
  const ArchSpec& phi3 = find_arch("Phi3ForCausalLM");
  ASSERT_EQ(phi3.layout.size(), 4u);
  EXPECT_EQ(tensor_rows(c, phi3.layout[0]), 96 + 2 * 48);  // qkv_proj
  EXPECT_EQ(tensor_rows(c, phi3.layout[2]), 2 * 160);      // gate_up_proj
}

TEST(ArchRegistry, Lookups) {
  ASSERT_NE(arch_by_hf("Qwen2ForCausalLM"), nullptr);
  EXPECT_STREQ(arch_by_hf("Qwen2ForCausalLM")->gguf_name, "qwen2");
  ASSERT_NE(arch_by_gguf("phi3"), nullptr);
  EXPECT_STREQ(arch_by_gguf("phi3")->hf_class, "Phi3ForCausalLM");
  EXPECT_STREQ(arch_by_gguf("llama")->hf_class, "LlamaForCausalLM");
  EXPECT_STREQ(arch_by_hf("MistralForCausalLM")->model_type, "mistral");
  // llama.cpp writes Mistral as "llama"; names of one kind are not found as the other.
  EXPECT_EQ(arch_by_gguf("mistral"), nullptr);
  EXPECT_EQ(arch_by_hf("llama"), nullptr);
  EXPECT_EQ(arch_by_gguf("LlamaForCausalLM"), nullptr);
  EXPECT_EQ(arch_by_hf(""), nullptr);
}

// Adding an architecture needs no edit here: the lists are checked against the table.
TEST(ArchRegistry, UnknownNameListsTheSupportedOnes) {
  const std::string hf = error_of([] { find_arch("GPT2LMHeadModel", "m/config.json"); });
  const std::string gguf = error_of([] { find_gguf_arch("gpt9"); });
  EXPECT_EQ(hf, "m/config.json: unsupported architecture 'GPT2LMHeadModel' (supported: " + supported_archs() + ")");
  EXPECT_TRUE(gguf.starts_with("unsupported architecture 'gpt9' (supported: llama, ")) << gguf;
  EXPECT_EQ(gguf.find("ForCausalLM"), std::string::npos) << gguf;
  for (const ArchSpec* a : all_archs()) {
    EXPECT_NE(hf.find(a->hf_class), std::string::npos) << a->hf_class;
    if (a->gguf_name) {
      EXPECT_NE(gguf.find(fmt::format(" {}", a->gguf_name)), std::string::npos) << a->gguf_name;
    }
  }
  EXPECT_TRUE(supported_archs().starts_with("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM"));
}

}  // namespace
}  // namespace upg
