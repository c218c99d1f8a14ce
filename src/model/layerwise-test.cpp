// Model::embed / run_layer (sequential calibration) against decode(), and
// Model::replace_weight.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/test-paths.h"
#include "upg/core/error.h"
#include "upg/model/model.h"

namespace upg {
namespace {

std::unique_ptr<Model> tiny() {
  ModelOptions o;
  o.load.dequant_to = DType::F32;
  o.n_threads = 2;
  return Model::from_file(test::fixture("tiny/llama"), o);
}

struct Seen {
  std::string name;
  std::vector<float> x;
};

Batch fresh(const std::vector<int32_t>& ids) {
  Batch b;
  for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], int32_t(i), 0, i + 1 == ids.size());
  return b;
}

// Every matmul input of a layer-by-layer run equals decode()'s, bit for bit: the same
// ubatches run through the same layer code.
TEST(Layerwise, LayerByLayerSeesWhatDecodeSees) {
  auto m = tiny();
  std::vector<int32_t> ids;
  for (int i = 0; i < 200; ++i) ids.push_back((i * 53 + 7) % m->config().vocab_size);
  std::vector<Seen> a, b;
  auto into = [](std::vector<Seen>& v) {
    return [&v](const LinearWeight& w, const float* x, int64_t n) {
      v.push_back({w.name, std::vector<float>(x, x + n * w.cols)});
    };
  };
  m->set_matmul_observer(into(a));
  m->decode(fresh(ids));
  m->set_matmul_observer(into(b));
  const Batch batch = fresh(ids);
  std::vector<float> x(ids.size() * size_t(m->config().hidden_size));
  m->embed(batch, x.data());
  for (int l = 0; l < m->config().num_layers; ++l) m->run_layer(l, batch, x.data());
  m->set_matmul_observer(nullptr);
  // decode() also runs the LM head on the last token, after the layers.
  ASSERT_EQ(a.size(), b.size() + 1);
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_TRUE(a[i].x == b[i].x) << b[i].name;
  }
  EXPECT_THROW(m->run_layer(m->config().num_layers, batch, x.data()), Error);
}

TEST(Layerwise, ReplaceWeight) {
  auto m = tiny();
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  const std::vector<float> base = m->forward(ids);
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  const TensorView& t = m->source().weights.get(q);
  std::vector<float> w(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, w.data(), t.numel());
  m->replace_weight(q, w);
  const std::vector<float> same = m->forward(ids);
  ASSERT_EQ(same.size(), base.size());
  for (size_t i = 0; i < base.size(); ++i) ASSERT_NEAR(same[i], base[i], 1e-5f * (1 + std::fabs(base[i])));
  m->replace_weight(q, std::vector<float>(w.size(), 0.0f));
  const std::vector<float> zeroed = m->forward(ids);
  double diff = 0;
  for (size_t i = 0; i < base.size(); ++i) diff += std::fabs(zeroed[i] - base[i]);
  EXPECT_GT(diff, 1e-3);
  EXPECT_THROW(m->replace_weight(q, std::vector<float>(3)), Error);
  EXPECT_THROW(m->replace_weight("model.layers.0.self_attn.nope.weight", w), Error);
  const TensorView& e = m->source().weights.get("model.embed_tokens.weight");
  EXPECT_THROW(m->replace_weight("model.embed_tokens.weight", std::vector<float>(size_t(e.numel()))), Error);
}

}  // namespace
}  // namespace upg
