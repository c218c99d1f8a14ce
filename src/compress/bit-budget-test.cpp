// --target-bpw: the choice is the exact optimum of small instances (brute force), never
// worse for a larger budget, and a compressed tiny model meets its budget, records its
// choice and follows it.
#include "compress/bit-budget.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "compress/compressor.h"
#include "core/test-paths.h"
#include "upg/core/error.h"
#include "upg/io/io.h"
#include "upg/io/upg-file.h"
#include "upg/model/model.h"

namespace upg::compress {
namespace {

namespace fs = std::filesystem;

double total_error(const std::vector<std::vector<Candidate>>& c, const std::vector<int>& choice, uint64_t* bytes) {
  double e = 0;
  *bytes = 0;
  for (size_t i = 0; i < c.size(); ++i) e += c[i][size_t(choice[i])].error, *bytes += c[i][size_t(choice[i])].bytes;
  return e;
}

TEST(BitBudget, ChoiceIsTheOptimumAndMonotone) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    // 5 tensors of 3 settings each: 243 combinations, every one checked.
    std::vector<std::vector<Candidate>> c(5);
    for (auto& t : c)
      for (int j = 0; j < 3; ++j) t.push_back({uint64_t(100 + rng() % 900), double(rng() % 1000) / 1000.0});
    double last = INFINITY;
    for (uint64_t budget = 500; budget <= 5000; budget += 250) {
      double brute = INFINITY;
      for (int k = 0; k < 243; ++k) {
        std::vector<int> ch;
        for (int i = 0, r = k; i < 5; ++i, r /= 3) ch.push_back(r % 3);
        uint64_t b = 0;
        const double e = total_error(c, ch, &b);
        if (b <= budget) brute = std::min(brute, e);
      }
      const std::vector<int> ch = choose_settings(c, budget);
      if (std::isinf(brute)) {
        EXPECT_TRUE(ch.empty());
        continue;
      }
      ASSERT_EQ(ch.size(), c.size());
      uint64_t b = 0;
      const double e = total_error(c, ch, &b);
      EXPECT_LE(b, budget);
      EXPECT_NEAR(e, brute, 1e-12);  // bytes below 65,536 are counted exactly
      EXPECT_LE(e, last + 1e-12);
      last = e;
    }
  }
}

TEST(BitBudget, WideRangesStayWithinBudget) {
  // Bytes far beyond the table's width: counted in coarser units, still never over.
  std::vector<std::vector<Candidate>> c;
  std::mt19937 rng(3);
  for (int i = 0; i < 40; ++i)
    c.push_back({{uint64_t(1'000'000 + rng() % 100'000), 0.001}, {uint64_t(400'000 + rng() % 50'000), 0.02},
                 {uint64_t(250'000 + rng() % 20'000), 0.3}});
  double last = INFINITY;
  for (uint64_t budget = 12'000'000; budget <= 40'000'000; budget += 1'000'000) {
    const std::vector<int> ch = choose_settings(c, budget);
    ASSERT_FALSE(ch.empty());
    uint64_t b = 0;
    const double e = total_error(c, ch, &b);
    EXPECT_LE(b, budget);
    EXPECT_LE(e, last);
    last = e;
  }
  EXPECT_TRUE(choose_settings(c, 5'000'000).empty());
}

TEST(BitBudget, MeasureWeightsByActivationNorms) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  const int64_t rows = 16, cols = 128;
  std::vector<float> w(size_t(rows * cols));
  for (float& x : w) x = nd(rng);
  MatrixOptions base;
  base.threads = 1;
  const std::vector<Setting> ladder = linear_ladder(base);
  ASSERT_EQ(ladder.size(), 10u);
  std::vector<float> loud(size_t(cols), 1.0f);
  loud[3] = 100.0f;  // one loud input channel dominates the output error
  for (const Setting& s : ladder) {
    SCOPED_TRACE(s.name);
    const Candidate plain = measure_setting(w, rows, cols, {}, s, "w");
    const Candidate weighted = measure_setting(w, rows, cols, loud, s, "w");
    EXPECT_GT(plain.error, 0.0);
    EXPECT_LT(plain.error, 1.0);
    if (!s.matrix.pattern.is_nm()) {
      EXPECT_EQ(plain.bytes, weighted.bytes);
    }
    if (s.dense_int8) {
      EXPECT_EQ(plain.bytes, uint64_t(rows * cols + rows * 4));
    }
  }
  // Within each width the ladder is ordered by bytes, most first (2:4 int4 g64 and int3
  // g64 both take 3.375 bits a weight).
  for (size_t i = 1; i < ladder.size(); ++i)
    if (ladder[i].matrix.values.bits() == ladder[i - 1].matrix.values.bits() && !ladder[i].matrix.pattern.is_nm())
      EXPECT_LT(measure_setting(w, rows, cols, {}, ladder[i], "w").bytes,
                measure_setting(w, rows, cols, {}, ladder[i - 1], "w").bytes);
  EXPECT_EQ(measure_setting(w, rows, cols, {}, ladder[4], "w").bytes,
            measure_setting(w, rows, cols, {}, ladder[6], "w").bytes);
  EXPECT_THROW(measure_setting(w, rows, cols, std::vector<float>(3, 1.0f), ladder[1], "w"), Error);
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("upg-bit-budget-test-{}", getpid());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

nlohmann::json compress_to(CompressOptions o, const fs::path& out, CompressReport* rep = nullptr) {
  o.source = test::fixture("tiny/llama");
  o.output = out.string();
  o.quiet = true;
  o.matrix.threads = 2;
  const CompressReport r = compress_model(o);
  if (rep) *rep = r;
  return nlohmann::json::parse(io::read_upg_header(o.output).compression_json);
}

int64_t source_weights() {
  int64_t n = 0;
  const ModelSource src = load_model_source(test::fixture("tiny/llama"), {});
  for (const auto& [name, t] : src.weights.all()) n += t.numel();
  return n;
}

TEST(BitBudget, TinyModelMeetsItsBudgets) {
  TempDir dir;
  const int64_t weights = source_weights();
  CompressOptions o;
  o.prune = PruneMethod::Magnitude;  // weight errors: no calibration
  // The smallest reachable size, as the refusal names it.
  o.target_bpw = 0.01;
  double min_bpw = 0;
  try {
    compress_to(o, dir.path / "none.upg");
    FAIL() << "a budget below the cheapest settings was accepted";
  } catch (const ParamError& e) {
    EXPECT_EQ(e.param(), "target_bpw");
    const std::string msg = e.what();
    const size_t at = msg.find("give ");
    ASSERT_NE(at, std::string::npos) << msg;
    min_bpw = std::stod(msg.substr(at + 5));
  }
  EXPECT_FALSE(fs::exists(dir.path / "none.upg"));
  ASSERT_GT(min_bpw, 0.0);
  double last_error = INFINITY;
  std::set<std::string> seen;
  for (double extra : {0.0, 0.05, 0.1, 0.2, 0.4, 0.8}) {
    o.target_bpw = min_bpw + extra + 1e-4;
    SCOPED_TRACE(o.target_bpw);
    const fs::path out = dir.path / "m.upg";
    CompressReport rep;
    const nlohmann::json j = compress_to(o, out, &rep);
    EXPECT_LE(double(fs::file_size(out)) / double(weights), o.target_bpw);
    const nlohmann::json& mp = j["mixed_precision"];
    EXPECT_EQ(mp["target_bpw"], o.target_bpw);
    EXPECT_EQ(mp["error"], "relative squared weight error");
    EXPECT_EQ(mp["error_factors"]["nm"], kNmErrorFactor);
    const double err = mp["total_error"];
    EXPECT_LE(err, last_error);
    last_error = err;
    // Every linear and the embedding chose, and the file holds what was chosen.
    ModelSource m = io::load_upg(out.string(), {});
    int planned = 0;
    for (const TensorReport& t : rep.tensors) {
      if (t.setting.empty()) continue;
      ++planned;
      seen.insert(t.setting);
      EXPECT_EQ(mp["tensors"][t.name]["setting"], t.setting);
      EXPECT_EQ(mp["tensors"][t.name]["bytes"], t.bytes) << t.name;
      if (t.setting == "int8") {
        EXPECT_TRUE(m.weights.contains(t.name + ".qweight")) << t.name;
      } else {
        auto it = m.compressed.find(t.name);
        ASSERT_NE(it, m.compressed.end()) << t.name;
        EXPECT_EQ(format::encoding_name(it->second.encoding),
                  t.setting.substr(t.setting.starts_with("2:4") ? 4 : 0, 4));  // "int4", "int3", "int2"
        EXPECT_EQ(it->second.layout, t.setting.starts_with("2:4") ? format::Layout::NM : format::Layout::Dense);
      }
    }
    EXPECT_EQ(planned, 2 * 7 + 1);  // two layers of seven linears, the tied embedding
    auto model = Model::from_file(out.string());
    for (float x : model->forward({1, 2, 3})) ASSERT_TRUE(std::isfinite(x));
  }
  // The cheapest budget stores int2, the largest int8: the ladder's ends were both used.
  EXPECT_TRUE(seen.contains("int2-g64-zp"));
  EXPECT_TRUE(seen.contains("int8"));
}

TEST(BitBudget, GptqRoundsTheChosenSettings) {
  TempDir dir;
  CompressOptions o;
  o.prune = PruneMethod::SparseGPT;
  o.gptq = o.act_order = true;
  std::vector<int32_t> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(int32_t((i * 37 + 11) % 256));
  o.calibration_tokens = ids;
  for (double bpw : {0.93, 1.05}) {  // around int4, and between int4 and int8
    SCOPED_TRACE(bpw);
    o.target_bpw = bpw;
    CompressReport rep;
    const nlohmann::json j = compress_to(o, dir.path / "g.upg", &rep);
    EXPECT_EQ(j["mixed_precision"]["error"], "relative squared output error, activation-norm weighted");
    EXPECT_LE(double(fs::file_size(dir.path / "g.upg")) / double(source_weights()), bpw);
    std::set<std::string> settings;
    for (const auto& [name, t] : j["mixed_precision"]["tensors"].items()) settings.insert(t["setting"]);
    EXPECT_GE(settings.size(), 2u);
  }
  const nlohmann::json j = nlohmann::json::parse(io::read_upg_header((dir.path / "g.upg").string()).compression_json);
  EXPECT_EQ(j["calibration"]["tokens"], 300);
  auto model = Model::from_file((dir.path / "g.upg").string());
  for (float x : model->forward({1, 2, 3})) ASSERT_TRUE(std::isfinite(x));
}

TEST(BitBudget, RejectsWhatItCannotCombine) {
  TempDir dir;
  CompressOptions o;
  o.prune = PruneMethod::Magnitude;
  for (double bad : {-1.0, double(NAN)}) {
    o.target_bpw = bad;
    EXPECT_THROW(compress_to(o, dir.path / "x.upg"), ParamError);
  }
  o.target_bpw = 1.0;
  o.dense_int8_linears = true;
  EXPECT_THROW(compress_to(o, dir.path / "x.upg"), ParamError);
  o.dense_int8_linears = false;
  o.embeddings = EmbeddingStore::Int4;
  EXPECT_THROW(compress_to(o, dir.path / "x.upg"), ParamError);
  EXPECT_FALSE(fs::exists(dir.path / "x.upg"));
}

}  // namespace
}  // namespace upg::compress
