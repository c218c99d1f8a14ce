// Tensor parallelism over NCCL: one rank through the whole split path (all-reduces, the
// LM head's gather, CUDA graphs capturing the collectives) against the plain CUDA model,
// bit for bit; 2 and 4 ranks against 1 on a SmolLM2-shaped GGUF. Skips without a GPU,
// without NCCL (libnccl.so.2 on the loader's path or UPG_NCCL_LIBRARY), or with fewer
// GPUs than ranks.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "core/test-paths.h"
#include "kernels/cuda/test-cuda.h"
#include "kernels/cuda/test-follows.h"
#include "kernels/cuda/test-gguf-model.h"
#include "model/tensor-parallel.h"
#include "model/weights.h"
#include "upg/core/error.h"
#include "upg/io/io.h"
#include "upg/kernels/communicator.h"
#include "upg/kernels_cuda/cuda.h"
#include "upg/model/model.h"

namespace upg {
namespace {

#define UPG_SKIP_WITHOUT_RANKS(n)                                                                        \
  do {                                                                                                   \
    UPG_SKIP_WITHOUT_CUDA();                                                                             \
    std::string why_;                                                                                    \
    if (!nccl_available(&why_)) GTEST_SKIP() << "GPU test: " << why_;                                    \
    if (cuda_device_count() < (n)) GTEST_SKIP() << "needs " << (n) << " GPUs, found " << cuda_device_count(); \
  } while (0)

// The GGUF on disk for one test.
struct Gguf {
  std::string path;
  Gguf() : path((std::filesystem::temp_directory_path() / ("upg-tp-test-" + std::to_string(::getpid()) + ".gguf")).string()) {
    test::write_llama_gguf(path, test::LlamaShape{}, io::GGML_Q4_0);
  }
  ~Gguf() { std::filesystem::remove(path); }
};

std::vector<int32_t> prompt() {
  std::vector<int32_t> p;
  for (int i = 0; i < 24; ++i) p.push_back(int32_t((i * 7919 + 100) % 49152));
  return p;
}

// Prompt logits, then 64 greedy picks made on the GPU (Batch::kGreedy), through run.
template <class Run, class Greedy>
std::pair<std::vector<float>, std::vector<int32_t>> decode(Run run, Greedy greedy) {
  const std::vector<int32_t> p = prompt();
  Batch b;
  for (size_t i = 0; i < p.size(); ++i) b.add(p[i], int32_t(i), 0, i + 1 == p.size());
  const std::span<const float> l = run(b);
  std::vector<float> logits(l.begin(), l.end());
  std::vector<int32_t> picks = {int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin())};
  for (int i = 0; i < 63; ++i) {
    Batch s;
    s.add(picks.back(), int32_t(p.size()) + i, 0, false);
    s.want_logits[0] = Batch::kGreedy;
    run(s);
    picks.push_back(greedy()[0]);
  }
  return {logits, picks};
}

TEST(TensorParallelCuda, OneRankOverNcclEqualsThePlainModel) {
  UPG_SKIP_WITHOUT_RANKS(1);
  Gguf g;
  ModelOptions o;
  o.device = Device::Cuda;
  o.context_length = 256;
  auto plain = Model::from_file(g.path, o);
  const auto want = decode([&](const Batch& b) { return plain->decode(b); }, [&] { return plain->greedy(); });

  ModelSource src = load_model_source(g.path, {});
  const ModelWeights w = bind_weights(src);
  TensorParallelOptions t;
  t.ranks = 1;
  t.make_backend = [](int r) { return make_cuda_backend(r); };
  t.make_communicators = [](std::span<Backend* const> bs) { return make_nccl_communicators(bs); };
  t.context_length = 256;
  t.kv_type = DType::F16;
  TensorParallel tp(src.config, w, t);
  const auto got = decode([&](const Batch& b) { return tp.run(b); }, [&] { return tp.greedy(); });
  EXPECT_EQ(got.first, want.first) << "prompt logits";
  EXPECT_EQ(got.second, want.second) << "greedy tokens";
}

// 2 and 4 ranks against 1 (4: 9 heads in 3 KV groups, one rank holds none). Both sides
// quantize activations to int8; the ranks' other order of sums flips a rounding now and
// then (ARCHITECTURE.md, known deviations): logits within 2e-2, and greedy tokens equal
// until a parting at a near-tie of 1 rank's own top two.
class RanksOnCuda : public ::testing::TestWithParam<int> {};

TEST_P(RanksOnCuda, MatchOneRank) {
  const int n = GetParam();
  UPG_SKIP_WITHOUT_RANKS(n);
  Gguf g;
  ModelOptions o;
  o.device = Device::Cuda;
  o.context_length = 256;
  auto one = Model::from_file(g.path, o);
  o.tensor_parallel = n;
  auto many = Model::from_file(g.path, o);
  test::expect_follows(*one, *many, prompt(), 2e-2, std::to_string(n) + " ranks against 1");
}

INSTANTIATE_TEST_SUITE_P(Ranks, RanksOnCuda, ::testing::Values(2, 4));

// Fewer GPUs than ranks: one clear error at load.
TEST(TensorParallelCuda, TooFewGpusIsOneClearError) {
  UPG_SKIP_WITHOUT_CUDA();
  ModelOptions o;
  o.device = Device::Cuda;
  o.tensor_parallel = cuda_device_count() + 1;
  try {
    Model::from_file(test::source_dir() + "/tests/fixtures/tiny/llama", o);
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA devices, found"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upg
