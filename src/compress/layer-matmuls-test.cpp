// LayerMatmuls: the calibration model's fp32 products through BLAS, and the outputs of
// settled weights kept between passes.
#include "compress/layer-matmuls.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "compress/calibrate.h"
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

}  // namespace
}  // namespace upg::compress
