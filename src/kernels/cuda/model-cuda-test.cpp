// Whole models on the GPU against the same models on the CPU (reference kernels, fp32
// activations like the GPU's): the tiny fixtures of every architecture (fp32/fp16/bf16,
// biases, fused projections, partial rotary, sliding window), and a SmolLM2-shaped
// random GGUF at Q8_0 and Q4_0 through prefill and 64 greedy tokens. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "core/test-paths.h"
#include "kernels/cuda/test-cuda.h"
#include "kernels/cuda/test-gguf-model.h"
#include "upg/core/error.h"
#include "upg/model/model.h"

namespace upg {
namespace {

std::unique_ptr<Model> load(const std::string& path, Device device, DType kv) {
  ModelOptions o;
  o.device = device;
  o.kv_type = kv;
  o.context_length = 256;
  o.reference_kernels = true;
  return Model::from_file(path, o);
}

class TinyOnCuda : public ::testing::TestWithParam<std::string> {};

// fp32 weights and cache on both sides: what differs is summation order.
TEST_P(TinyOnCuda, LogitsMatchTheCpu) {
  UPG_SKIP_WITHOUT_CUDA();
  const std::string dir = test::source_dir() + "/tests/fixtures/tiny/" + GetParam();
  auto cpu = load(dir, Device::Cpu, DType::F32), gpu = load(dir, Device::Cuda, DType::F32);
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(int32_t((i * 37 + 5) % cpu->config().vocab_size));
  EXPECT_LT(test::rel_error(gpu->forward(ids), cpu->forward(ids)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Archs, TinyOnCuda, ::testing::Values("llama", "mistral", "qwen2", "phi3"));

class SmolShapedOnCuda : public ::testing::TestWithParam<uint32_t> {};

// Prompt logits within 1e-3 (the f16 cache rounds the same values on both sides, and
// 30 layers of fp32 summation-order differences pass through it), then 64 greedy tokens
// identical: where they part, the CPU's own top two must be within 1e-3 of each other.
TEST_P(SmolShapedOnCuda, PrefillLogitsAndGreedyTokens) {
  UPG_SKIP_WITHOUT_CUDA();
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("upg-cuda-test-" + std::to_string(GetParam()) + ".gguf")).string();
  test::write_llama_gguf(path, test::LlamaShape{}, GetParam());
  auto cpu = load(path, Device::Cpu, DType::F16), gpu = load(path, Device::Cuda, DType::F16);
  std::filesystem::remove(path);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 24; ++i) prompt.push_back(int32_t((i * 7919 + 100) % 49152));
  EXPECT_LT(test::rel_error(gpu->forward(prompt), cpu->forward(prompt)), 1e-3);

  Batch bc, bg;
  for (size_t i = 0; i < prompt.size(); ++i) {
    bc.add(prompt[i], int32_t(i), 0, i + 1 == prompt.size());
    bg.add(prompt[i], int32_t(i), 0, i + 1 == prompt.size());
  }
  for (int step = 0; step < 64; ++step) {
    const auto lc = cpu->decode(bc);
    const auto lg = gpu->decode(bg);
    const std::vector<float> c(lc.begin(), lc.end()), g(lg.begin(), lg.end());
    const int32_t tc = int32_t(std::max_element(c.begin(), c.end()) - c.begin());
    const int32_t tg = int32_t(std::max_element(g.begin(), g.end()) - g.begin());
    if (tc != tg) {
      std::vector<float> sorted = c;
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      EXPECT_LT(sorted[0] - sorted[1], 1e-3f) << "step " << step << ": cpu " << tc << ", gpu " << tg;
      break;
    }
    bc.clear();
    bg.clear();
    bc.add(tc, int32_t(prompt.size()) + step, 0, true);
    bg.add(tg, int32_t(prompt.size()) + step, 0, true);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, SmolShapedOnCuda, ::testing::Values(uint32_t(io::GGML_Q8_0), uint32_t(io::GGML_Q4_0)));

// On a machine without a GPU (CI), --device cuda is one line saying why.
TEST(CudaModel, NoDeviceIsOneClearError) {
  std::string why;
  if (!cuda_available(&why)) {
    const std::string dir = test::source_dir() + "/tests/fixtures/tiny/llama";
    try {
      load(dir, Device::Cuda, DType::F16);
      FAIL() << "loaded on a machine without CUDA";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), why);
    }
  }
}

}  // namespace
}  // namespace upg
