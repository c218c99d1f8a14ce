// LayerMatmuls: the calibration model's fp32 products through BLAS, and the outputs of
// settled weights kept between passes.
#include "compress/layer-matmuls.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "compress/calibrate.h"
#include "compress/compressor.h"
#include "compress/layerwise.h"
#include "core/test-paths.h"
#include "upg/model/model.h"

namespace upg::compress {
namespace {

struct TinyRun {
  std::unique_ptr<Model> model;
  std::vector<int32_t> ids;
  std::vector<Batch> batches;
  std::vector<float> x0;  // the embeddings
};

TinyRun tiny_run() {
  TinyRun r;
  ModelOptions o;
  o.load.dequant_to = DType::F32;
  o.n_threads = 2;
  o.kv_type = DType::F32;  // f16 keys would turn the products' last-bit differences into 1e-4 ones
  r.model = Model::from_file(test::fixture("tiny/llama"), o);
  for (int i = 0; i < 300; ++i) r.ids.push_back((i * 37 + 11) % r.model->config().vocab_size);
  r.batches = calibration_batches(*r.model, r.ids, 128);
  r.x0.resize(r.ids.size() * size_t(r.model->config().hidden_size));
  size_t off = 0;
  for (const Batch& b : r.batches) {
    r.model->embed(b, r.x0.data() + off * size_t(r.model->config().hidden_size));
    off += b.size();
  }
  return r;
}

std::vector<float> layer0(TinyRun& r) {
  std::vector<float> x = r.x0;
  size_t off = 0;
  for (const Batch& b : r.batches) {
    r.model->run_layer(0, b, x.data() + off * size_t(r.model->config().hidden_size));
    off += b.size();
  }
  return x;
}

TEST(LayerMatmuls, MatchesTheEngineAndKeepsSettledOutputs) {
  TinyRun r = tiny_run();
  const std::vector<float> engine = layer0(r);
  LayerMatmuls m(*r.model, r.ids.size(), 2);
  m.new_layer();
  m.new_pass();
  const std::vector<float> blas = layer0(r);
  const int64_t all = m.computed();
  const ModelConfig& c = r.model->config();
  // q, k, v, o, gate, up, down rows for every token.
  const int64_t rows = 2 * c.num_heads * c.head_dim + 2 * c.num_kv_heads * c.head_dim + 2 * c.intermediate_size +
                       c.hidden_size;
  EXPECT_EQ(all, rows * int64_t(r.ids.size()));
  ASSERT_EQ(blas.size(), engine.size());
  for (size_t i = 0; i < blas.size(); ++i) ASSERT_NEAR(blas[i], engine[i], 1e-4f * (1 + std::fabs(engine[i]))) << i;
  // Settled q and k: computed (and kept) in the next pass, served from then on, bit for bit.
  m.settle("model.layers.0.self_attn.q_proj.weight");
  m.settle("model.layers.0.self_attn.k_proj.weight");
  m.new_pass();
  EXPECT_EQ(layer0(r), blas);
  EXPECT_EQ(m.computed(), 2 * all);
  m.new_pass();
  EXPECT_EQ(layer0(r), blas);
  const int64_t qk = int64_t(r.ids.size()) * (c.num_heads + c.num_kv_heads) * c.head_dim;
  EXPECT_EQ(m.computed(), 3 * all - qk);
  // Settled o: kept from the next pass on, and then the attention feeding it (with q, k
  // and v) is not run at all.
  m.settle("model.layers.0.self_attn.o_proj.weight");
  m.new_pass();
  EXPECT_EQ(layer0(r), blas);
  EXPECT_EQ(m.computed(), 4 * all - 2 * qk);
  m.new_pass();
  EXPECT_EQ(layer0(r), blas);
  const int64_t attention = int64_t(r.ids.size()) * (2 * c.num_heads + 2 * c.num_kv_heads) * c.head_dim;
  EXPECT_EQ(m.computed(), 5 * all - 2 * qk - attention);
  // A new layer forgets them.
  m.new_layer();
  m.new_pass();
  EXPECT_EQ(layer0(r), blas);
  EXPECT_EQ(m.computed(), 6 * all - 2 * qk - attention);
}

// A whole layerwise run computes each product once per calibration token with the source
// weights (the source pass) and once with the compressed ones, nothing more: a group's pass
// stops at its matmuls for the whole batch, here 600 tokens in 512-token batches, more
// than the engine's default ubatch of 256 (before calibration ran a batch as one ubatch,
// the first 256 tokens of each went through the rest of the layer in every group's
// pass). The default model, as the tiny fixtures' context is 256; only its layer 1 is
// compressed (the others still run both passes).
TEST(LayerMatmuls, LayerwiseComputesEachProductTwice) {
  const std::string path = test::default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not found at " << path << " (set UPG_MODEL)";
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "a 135M-parameter model's layers over 600 tokens are too slow under AddressSanitizer";
#endif
  std::vector<int32_t> ids;
  for (int i = 0; i < 600; ++i) ids.push_back(i * 37 + 11);
  CalibrationInput in = open_calibration(path, "", 8192, 512, 2, ids);
  const ModelConfig& c = in.model->config();
  MatrixOptions mo;
  mo.sparsity = 0.5;
  mo.threads = 2;
  int64_t computed = 0;
  LayerwiseOptions lo;
  lo.computed_rows = &computed;
  auto layer1 = [](const std::string& n) { return n.starts_with("model.layers.1.") && is_compressible(n, 2); };
  const auto out = sparsegpt_layerwise(*in.model, in.tokens, mo, layer1, 512, {}, lo);
  EXPECT_EQ(out.size(), 7u);
  const int64_t rows = 2 * c.num_heads * c.head_dim + 2 * c.num_kv_heads * c.head_dim + 2 * c.intermediate_size +
                       c.hidden_size;
  EXPECT_EQ(computed, 2 * rows * int64_t(ids.size()) * c.num_layers);
}

}  // namespace
}  // namespace upg::compress
