#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "upg/core/error.h"

namespace upg {
namespace {

ModelConfig base() {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 10000.0f;
  c.max_position_embeddings = 4096;
  return c;
}

TEST(Rope, PlainFrequenciesAndTables) {
  RopeCache r = build_rope(base(), 16);
  ASSERT_EQ(r.inv_freq.size(), 32u);
  EXPECT_FLOAT_EQ(r.inv_freq[0], 1.0f);
  EXPECT_NEAR(r.inv_freq[31], std::pow(10000.0, -62.0 / 64.0), 1e-7);
  EXPECT_EQ(r.table.rotary_dim, 64);
  // position 0 is the identity rotation
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(r.cos[size_t(i)], 1.0f);
    EXPECT_EQ(r.sin[size_t(i)], 0.0f);
  }
  EXPECT_NEAR(r.cos[size_t(5 * 32 + 3)], std::cos(5.0 * r.inv_freq[3]), 1e-6);
  EXPECT_NEAR(r.sin[size_t(5 * 32 + 3)], std::sin(5.0 * r.inv_freq[3]), 1e-6);
}

TEST(Rope, PartialRotaryRotatesOnlyTheLeadingDims) {
  ModelConfig c = base();
  c.partial_rotary_factor = 0.5f;
  RopeCache r = build_rope(c, 4);
  EXPECT_EQ(r.table.rotary_dim, 32);
  EXPECT_EQ(r.inv_freq.size(), 16u);
  EXPECT_NEAR(r.inv_freq[1], std::pow(10000.0, -2.0 / 32.0), 1e-7);  // fp32, as transformers computes it
}

TEST(Rope, LinearScalingDividesFrequencies) {
  ModelConfig c = base();
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 4.0f;
  RopeCache plain = build_rope(base(), 2), scaled = build_rope(c, 2);
  for (size_t i = 0; i < plain.inv_freq.size(); ++i) EXPECT_FLOAT_EQ(scaled.inv_freq[i], plain.inv_freq[i] / 4.0f);
}

TEST(Rope, Llama3ScalingKeepsHighAndSlowsLowFrequencies) {
  ModelConfig c = base();
  c.rope_theta = 500000.0f;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 8192;
  ModelConfig plain_cfg = c;
  plain_cfg.rope_scaling.type = "none";
  RopeCache plain = build_rope(plain_cfg, 2), scaled = build_rope(c, 2);
  EXPECT_FLOAT_EQ(scaled.inv_freq[0], plain.inv_freq[0]);            // short wavelength: kept
  EXPECT_FLOAT_EQ(scaled.inv_freq[31], plain.inv_freq[31] / 8.0f);   // long wavelength: / factor
}

TEST(Rope, UnsupportedScalingAndBadRotaryDimAreErrors) {
  ModelConfig c = base();
  c.rope_scaling.type = "yarn";
  EXPECT_THROW(build_rope(c, 2), Error);
  c = base();
  c.rope_scaling.type = "longrope";
  c.rope_scaling.short_factor = {1.0f, 2.0f};  // wrong length
  EXPECT_THROW(build_rope(c, 2), Error);
  c = base();
  c.partial_rotary_factor = 0.0f;
  EXPECT_THROW(build_rope(c, 2), Error);
}

}  // namespace
}  // namespace upg
