// End-to-end tests of `upg export`: UPG files that `upg compress` makes from the tiny
// Llama fixture, in every form with a compressed-tensors counterpart, written out and
// read back as a Hugging Face directory give the same logits, bit for bit; a form
// without a counterpart is one error line and no output.
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli-test-helpers.h"
#include "upg/model/model.h"

namespace upg::cli_test {
namespace {

namespace fs = std::filesystem;

const std::string kTiny = UPG_SOURCE_DIR "/tests/fixtures/tiny/llama";

std::vector<float> logits(const std::string& path, bool reference_kernels) {
  ModelOptions o;
  o.kv_type = DType::F32;
  o.n_threads = 1;
  o.reference_kernels = reference_kernels;
  auto model = Model::from_file(path, o);
  return model->forward({1, 17, 42, 99, 3, 250, 7, 64, 128, 5, 200, 11});
}

struct Case {
  const char* name;
  std::vector<std::string> flags;
  const char* format;  // quantization_config.format
  const char* sparsity;
};

class CliExport : public ::testing::TestWithParam<Case> {};

TEST_P(CliExport, RoundTripGivesIdenticalLogits) {
  const Case& c = GetParam();
  TempDir dir;
  const std::string upg = (dir / "m.upg").string(), out = (dir / "ct").string();
  std::vector<std::string> args = {"compress", kTiny, "-o", upg, "--prune", "magnitude", "-t", "1"};
  args.insert(args.end(), c.flags.begin(), c.flags.end());
  ProcessResult r = run_upg(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_upg({"export", upg, "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "compressed-tensors")) << r.err;
  const auto config = nlohmann::json::parse(read_file(fs::path(out) / "config.json"));
  const auto& q = config["quantization_config"];
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_EQ(q["format"], c.format);
  if (c.sparsity) {
    EXPECT_EQ(q["sparsity_config"]["format"], c.sparsity);
  } else {
    EXPECT_TRUE(q["sparsity_config"].empty());
  }
  // The N:M int4 file goes out dense (pruned weights as the zero point's code): the
  // reader runs it through another kernel than the N:M one, so the reference kernels,
  // which add the same products in the same order, are what must agree exactly.
  const bool nm_int4 = c.sparsity == nullptr && std::string(c.name).starts_with("nm");
  const std::vector<float> want = logits(upg, nm_int4), got = logits(out, nm_int4);
  ASSERT_EQ(want.size(), got.size());
  EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, CliExport,
    ::testing::Values(
        Case{"int4_g32_zero_points", {"--values", "int4", "--group-size", "32", "--zero-point"}, "pack-quantized",
             nullptr},
        Case{"int4_g64_int8_embedding", {"--values", "int4", "--group-size", "64", "--embeddings", "int8"},
             "mixed-precision", nullptr},
        Case{"dense_int8", {"--dense-int8"}, "int-quantized", nullptr},
        Case{"sparse_2_4_int8", {"--pattern", "2:4", "--values", "int8"}, "int-quantized", "sparse-24-bitmask"},
        Case{"unstructured_int8", {"--sparsity", "0.5", "--pattern", "unstructured", "--values", "int8"},
             "int-quantized", "sparse-bitmask"},
        Case{"nm_int4_2_4", {"--pattern", "2:4", "--values", "int4", "--group-size", "32"}, "pack-quantized",
             nullptr}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(CliExportErrors, PrimeAndLowBitValuesAreRefusedAndNothingIsWritten) {
  for (const char* values : {"prime:127", "int3"}) {
    SCOPED_TRACE(values);
    TempDir dir;
    const std::string upg = (dir / "p.upg").string(), out = (dir / "ct").string();
    ProcessResult r = run_upg({"compress", kTiny, "-o", upg, "--prune", "magnitude", "--values", values, "-t", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_upg({"export", upg, "-o", out});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(contains(r.err, "proj.weight") && contains(r.err, std::string(values).substr(0, 4)) &&
                contains(r.err, upg))
        << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
    int entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
    EXPECT_EQ(entries, 1);  // the UPG file only: no temp directory left
  }
}

TEST(CliExportErrors, HelpNamesTheFormatAndTheRefusals) {
  ProcessResult r = run_upg({"export", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "compressed-tensors") && contains(r.out, "pack-quantized") &&
              contains(r.out, "--output") && contains(r.out, "codebook"))
      << r.out;
  r = run_upg({"export", "x.upg", "-o", "y", "--format", "gguf"});
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace upg::cli_test
