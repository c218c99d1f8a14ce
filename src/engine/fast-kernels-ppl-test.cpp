// Perplexity of the default model through the fast int8 kernels against the reference
// kernels (fp32 activations), on UPG files compressed here: dense int8, 50% unstructured
// (MdCSR) and 2:4, run as 16-row bitmap tiles and Nm24Rows16 on AVX-512, and int4 (dense
// with groups of 32 and zero points, run by the 4-bit block kernels; 2:4 with groups of
// 64, run in place on AVX-512 and AVX2). Each variant is a whole compression and four
// evaluations, so there is one per kernel path: the other int4 group sizes, with and
// without zero points, are checked against a reference product in
// src/kernels/cpu/int4-kernels-test.cpp. Skipped when the default model is absent.
//
// Tolerance: the fast kernels round activations to int8 per 32 columns. Measured on
// 1024 KJV tokens: dense int8 4.1814 against 4.1750 (mean NLL +0.0015 nats); the stated
// bound is 0.02 nats of mean NLL. A wrong kernel moves it by whole nats. The 2:4 file,
// magnitude-pruned, is a barely working model (perplexity about 390 on this text against
// 4.2), whose flat logits turn the same rounding into more NLL: on a Zen 4 host (AVX-512)
// fast 5.9540 against reference 5.9782, 0.024 nats, bit for bit the same with the 16-row
// bitmap tiles and with Nm24Rows16 (integer sums are exact, so the difference comes from
// the rounding alone); its bound is 0.04.
//
// The int4 files are rounded to nearest: measured on a busy Zen 4 (2026-12-07), dense int4
// with groups of 32 and zero points within 0.02 nats; 2:4 int4 (magnitude, groups of 64), a
// degraded model, gets the 2:4 file's bound, within 0.04 over the windows, and its 48-token
// decode mean fast 5.951 against 6.020 (0.069 nats, where a broken kernel moves it by
// whole nats).
//
// Perplexity runs windows of 128 tokens, which take the prefill (GEMM) kernels; the same
// text decoded one token at a time takes the decode kernels, checked on its first 48
// tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <fmt/format.h>

#include "compress/compressor.h"
#include "core/test-paths.h"
#include "upg/model/model.h"
#include "upg/engine/perplexity.h"

namespace upg {
namespace {

constexpr double kNllTolerance = 0.02;
// The token-by-token check is there to catch a broken single-token path, which moves
// the mean by whole nats. Its 48-token mean is noisy: int8 activation rounding makes the
// fast path chaotic, so a change in the 7th digit of the attention's output (merged
// chunks instead of whole rows, which the reference kernels do not even notice) flips
// roundings that carry through every later layer. On the 2:4 file that alone moved the
// fast mean over 6.017-6.035 against a reference of 5.996.
constexpr double kStepNllTolerance = 0.05;

// Mean NLL of ids[1..n] with every token its own decode step.
double decode_nll(Model& m, const std::vector<int32_t>& ids, size_t n) {
  double nll = 0;
  for (size_t i = 0; i < n; ++i) {
    Batch b;
    b.add(ids[i], int32_t(i), 0, true);
    const std::span<const float> logits = m.decode(b);
    const float mx = *std::max_element(logits.begin(), logits.end());
    double z = 0;
    for (float l : logits) z += std::exp(double(l - mx));
    nll += std::log(z) + mx - logits[size_t(ids[i + 1])];
  }
  return nll / double(n);
}

struct Variant {
  const char* name;
  bool dense_int8;
  const char* pattern;
  double nll_tolerance;
  const char* values = "int8";
  int group_size = 128;  // int4
  bool zero_point = false;
  double step_nll_tolerance = kStepNllTolerance;
};

class FastKernelsPerplexity : public ::testing::TestWithParam<Variant> {};

TEST_P(FastKernelsPerplexity, MatchesReferenceKernels) {
  if (!std::ifstream(test::default_model_path()).good())
    GTEST_SKIP() << "default model not found at " << test::default_model_path();
  const Variant& v = GetParam();
  const std::filesystem::path out =
      std::filesystem::temp_directory_path() / fmt::format("upg-ppl-test-{}-{}.upg", v.name, ::getpid());
  compress::CompressOptions o;
  o.source = test::default_model_path();
  o.output = out.string();
  o.prune = compress::PruneMethod::Magnitude;
  o.embeddings = compress::EmbeddingStore::Int8;
  o.dense_int8_linears = v.dense_int8;
  o.matrix.pattern = compress::parse_pattern(v.pattern);
  o.matrix.values = compress::parse_values(v.values);
  o.matrix.values.group_size = v.group_size;
  o.matrix.values.zero_point = v.zero_point;
  const bool int4 = o.matrix.values.encoding == format::Encoding::Int4;
  o.matrix.sparsity = int4 && !o.matrix.pattern.is_nm() ? 0.0 : 0.5;
  o.quiet = true;
  compress::compress_model(o);

  std::ifstream in(test::fixture("eval/kjv-slice.txt"));
  std::stringstream text;
  text << in.rdbuf();
  double nll[2] = {0, 0}, step_nll[2] = {0, 0};
  for (const bool reference : {false, true}) {
    ModelOptions mo;
    mo.n_threads = 2;
    mo.context_length = 128;
    mo.reference_kernels = reference;
    auto m = Model::from_file(out.string(), mo);
    std::vector<int32_t> ids = m->tokenizer().encode(text.str());
    ids.resize(256);
    nll[reference] = perplexity(*m, ids, 128).mean_nll;
    step_nll[reference] = decode_nll(*m, ids, 48);
  }
  std::filesystem::remove(out);
  EXPECT_TRUE(std::isfinite(nll[0]));
  RecordProperty("fast_ppl", std::to_string(std::exp(nll[0])));
  RecordProperty("reference_ppl", std::to_string(std::exp(nll[1])));
  EXPECT_NEAR(nll[0], nll[1], v.nll_tolerance) << "fast " << std::exp(nll[0]) << ", reference " << std::exp(nll[1]);
  EXPECT_NEAR(step_nll[0], step_nll[1], v.step_nll_tolerance) << "token by token: fast " << step_nll[0] << ", reference "
                                                        << step_nll[1];
}

INSTANTIATE_TEST_SUITE_P(DefaultModel, FastKernelsPerplexity,
                         ::testing::Values(Variant{"dense_int8", true, "unstructured", kNllTolerance},
                                           Variant{"mdcsr_50", false, "unstructured", kNllTolerance},
                                           Variant{"nm_2_4", false, "2:4", 2 * kNllTolerance},
                                           Variant{"int4_g32_zero_points", false, "unstructured", kNllTolerance,
                                                   "int4", 32, true},
                                           Variant{"int4_2_4_g64", false, "2:4", 2 * kNllTolerance, "int4", 64,
                                                   false, 2 * kStepNllTolerance}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace upg
