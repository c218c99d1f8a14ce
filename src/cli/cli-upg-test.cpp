// End-to-end tests of `upg inspect` and `upg decompress`: a small UPG file of every
// layout and encoding, and (when the model is present) one built from the default GGUF,
// whose decompressed directory must hold exactly the weights the engine decodes.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/cli-test-helpers.h"
#include "io/atomic-file-test-util.h"
#include "upg/io/hf-config-writer.h"
#include "io/safetensors-reader.h"
#include "upg/io/upg-file.h"
#include "io/upg-test-util.h"
#include "upg/io/io.h"
#include "upg/format/primes.h"

namespace upg::cli_test {
namespace {

namespace fs = std::filesystem;

void write_tiny(const std::string& path) {
  io::UpgWriter w(path, io::testing::tiny_header());
  for (const auto& k : io::testing::every_kind()) w.add_compressed(k.name, k.data);
  const std::vector<float> norm(8, 0.5f);
  const std::vector<int8_t> q = {1, -2, 3, -4, 5, -6};
  const std::vector<float> qs = {0.5f, 0.25f};
  w.add_dense("model.norm.weight", DType::F32, {8}, io::testing::bytes_of(norm));
  w.add_dense("model.embed_tokens.weight.qweight", DType::I8, {2, 3}, io::testing::bytes_of(q));
  w.add_dense("model.embed_tokens.weight.scales", DType::F32, {2}, io::testing::bytes_of(qs));
  w.finish();
}

const TensorView& find(const io::SafetensorsFile& st, const std::string& name) {
  for (const auto& t : st.tensors)
    if (t.name == name) return t;
  throw std::runtime_error("no tensor " + name);
}

// Every decompressed tensor equals what the engine decodes from the UPG file, bit for bit.
void expect_decompressed_equal(const std::string& upg, const fs::path& dir) {
  const ModelSource src = io::load_upg(upg, {});
  const io::SafetensorsFile st = io::read_safetensors((dir / "model.safetensors").string());
  for (const auto& [name, m] : src.compressed) {
    SCOPED_TRACE(name);
    const TensorView& t = find(st, name);
    ASSERT_EQ(t.dtype, DType::F32);
    ASSERT_EQ(t.shape, (std::vector<int64_t>{m.rows, m.cols}));
    const std::vector<float> want = format::decode_dense(m);
    ASSERT_EQ(std::memcmp(t.data, want.data(), t.nbytes), 0);
  }
  for (const auto& [name, d] : src.weights.all()) {
    if (name.ends_with(".scales") && src.weights.contains(name.substr(0, name.size() - 7) + ".qweight")) continue;
    if (name.ends_with(".qweight")) {
      const TensorView& t = find(st, name.substr(0, name.size() - 8));
      const TensorView& s = src.weights.get(name.substr(0, name.size() - 8) + ".scales");
      ASSERT_EQ(t.dtype, DType::F32);
      for (int64_t i = 0; i < d.numel(); ++i)
        ASSERT_EQ(t.as<float>()[i], s.as<float>()[i / d.cols()] * float(d.as<int8_t>()[i])) << name << " " << i;
      continue;
    }
    const TensorView& t = find(st, name);
    EXPECT_EQ(t.dtype, d.dtype) << name;
    ASSERT_EQ(t.nbytes, d.nbytes) << name;
    EXPECT_EQ(std::memcmp(t.data, d.data, d.nbytes), 0) << name;
  }
}

TEST(CliUpg, InspectListsEveryTensor) {
  TempDir dir;
  const std::string path = (dir / "tiny.upg").string();
  write_tiny(path);
  ProcessResult r = run_upg({"inspect", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "upg.version:  2")) << r.out;
  EXPECT_TRUE(contains(r.out, "LlamaForCausalLM")) << r.out;
  EXPECT_TRUE(contains(r.out, "\"pattern\": \"mixed\"")) << r.out;  // compression JSON, pretty
  for (const auto& k : io::testing::every_kind()) {
    const format::CompressedMatrix m = k.data.view();
    // The line of this tensor: layout, shape, entries, bytes and bytes per weight.
    const size_t at = r.out.find(k.name);
    ASSERT_NE(at, std::string::npos) << k.name;
    const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    EXPECT_TRUE(contains(line, format::layout_name(m.layout))) << line;
    EXPECT_TRUE(contains(line, fmt::format("[{}, {}]", m.rows, m.cols))) << line;
    EXPECT_TRUE(contains(line, fmt::format(" {} ", m.entries()))) << line;
    EXPECT_TRUE(contains(line, fmt::format(" {} ", m.bytes()))) << line;
    EXPECT_TRUE(contains(line, fmt::format("{:.3f}", double(m.bytes()) / double(m.rows * m.cols)))) << line;
  }
  // q_proj row 0 keeps 2 of 600 weights; the file's other rows keep about 30%.
  EXPECT_TRUE(contains(r.out, "model.norm.weight")) << r.out;
  EXPECT_TRUE(contains(r.out, "compressed:   5 tensors")) << r.out;
  EXPECT_TRUE(contains(r.out, "dense:        3 tensors")) << r.out;
}

TEST(CliUpg, DecompressWritesAHuggingFaceDirectory) {
  TempDir dir;
  const std::string path = (dir / "tiny.upg").string();
  write_tiny(path);
  const fs::path out = dir / "hf";
  ProcessResult r = run_upg({"decompress", path, "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "config.json")), nlohmann::json::parse(io::testing::kTinyConfig));
  EXPECT_EQ(read_file(out / "tokenizer.json"), io::testing::kTinyTokenizer);
  expect_decompressed_equal(path, out);
  // The directory is a model source of its own (dense now).
  const ModelSource back = load_model_source(out.string());
  EXPECT_TRUE(back.compressed.empty());
  EXPECT_TRUE(back.weights.contains("model.embed_tokens.weight"));
  // Nothing but the output is left beside it.
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 2);

  // A second run refuses to overwrite a non-empty directory.
  r = run_upg({"decompress", path, "-o", out.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "not an empty directory")) << r.err;
}

TEST(CliUpg, CorruptFileFailsCleanly) {
  TempDir dir;
  const std::string good = (dir / "good.upg").string(), bad = (dir / "bad.upg").string();
  write_tiny(good);
  io::testing::FileImage img(good);
  img.as<uint32_t>("model.layers.0.self_attn.k_proj.weight.row_pointers")[2] = 0;
  img.write(bad);
  for (const char* cmd : {"inspect", "decompress"}) {
    ProcessResult r = cmd == std::string("inspect") ? run_upg({cmd, bad}) : run_upg({cmd, bad, "-o", (dir / "out").string()});
    EXPECT_EQ(r.exit_code, 1) << cmd;
    EXPECT_TRUE(contains(r.err, bad) && contains(r.err, "k_proj.weight") && contains(r.err, "decreases")) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(CliUpg, HelpExplains) {
  ProcessResult r = run_upg({"inspect", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "bytes per") && contains(r.out, "sparsity")) << r.out;
  r = run_upg({"decompress", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "--output") && contains(r.out, "transformers")) << r.out;
}

TEST(CliUpg, GgufFileIsNamedAsSuch) {
  // "GGUF", version 3, no tensors, no metadata. Read as a safetensors header length the
  // first 8 bytes say 14064895815, and a message about that limit would not tell the
  // user they passed the wrong kind of file.
  TempDir dir;
  const std::string gguf = (dir / "model.gguf").string();
  std::string bytes = "GGUF";
  bytes += std::string("\x03\0\0\0", 4) + std::string(16, '\0');
  write_file(gguf, bytes);
  for (const char* cmd : {"inspect", "decompress"}) {
    const std::string out = (dir / "out").string();
    ProcessResult r = cmd == std::string("inspect") ? run_upg({cmd, gguf}) : run_upg({cmd, gguf, "-o", out});
    EXPECT_EQ(r.exit_code, 1) << cmd;
    EXPECT_TRUE(contains(r.err, gguf) && contains(r.err, "GGUF file, not a UPG")) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(CliUpg, DecompressChecksTheOutputFirst) {
  TempDir dir;
  const std::string path = (dir / "tiny.upg").string();
  write_tiny(path);
  const std::string out = (dir / "missing" / "hf").string();
  ProcessResult r = run_upg({"decompress", path, "-o", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, out) && contains(r.err, "No such file or directory")) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(io::testing::dir_entries(dir.path()), std::vector<std::string>{"tiny.upg"});
}

TEST(CliUpg, DecompressRemovesTheTempOfAKilledRun) {
  TempDir dir;
  const std::string path = (dir / "tiny.upg").string();
  write_tiny(path);
  const fs::path out = dir / "hf";
  const fs::path stale = io::testing::temp_name(out.string(), io::testing::dead_pid());
  fs::create_directory(stale);
  write_file(stale / "model.safetensors", "half a model");
  ProcessResult r = run_upg({"decompress", path, "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "removed " + stale.string())) << r.err;
  EXPECT_EQ(io::testing::dir_entries(dir.path()), (std::vector<std::string>{"hf", "tiny.upg"}));
  expect_decompressed_equal(path, out);
}

// ---- A UPG file from the real model ----

TEST(CliUpg, CompressChecksTheOutputFirst) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  // Without the check, calibration and SparseGPT run for minutes before the write fails.
  TempDir dir;
  const std::string out = (dir / "missing" / "out.upg").string();
  ProcessResult r = run_upg({"compress", model, "-o", out}, {}, 60);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, out) && contains(r.err, "No such file or directory")) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
}

// With no flag choosing the values, pattern, sparsity, pruning or GPTQ, the file is dense
// int4 in groups of 64 with zero points through GPTQ in activation order, the embedding
// int4; --prune sparsegpt alone gives 50% SparseGPT with int8 values (the default before).
// Layer 0 only, on 64 tokens, to keep it short.
TEST(CliUpg, CompressDefaultRecipe) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  TempDir dir;
  const std::string out = (dir / "d.upg").string(), skip = R"(layers\.([1-9]|[12][0-9])\.)";
  auto record = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"compress", model, "-o", out, "--skip", skip, "--calib-tokens", "64", "-t", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    const ProcessResult r = run_upg(args, {}, 600);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(io::read_upg_header(out).compression_json);
  };
  const nlohmann::json d = record({});
  EXPECT_EQ(d["values"], "int4");
  EXPECT_EQ(d["group_size"], 64);
  EXPECT_EQ(d["zero_points"], true);
  EXPECT_EQ(d["sparsity"], 0.0);
  EXPECT_EQ(d["gptq"]["act_order"], true);
  EXPECT_EQ(d["gptq"]["lm_head"], false);
  EXPECT_EQ(d["embeddings"], "int4");
  EXPECT_EQ(d["calibration"]["tokens"], 64);
  const nlohmann::json s = record({"--prune", "sparsegpt"});
  EXPECT_EQ(s["prune"], "sparsegpt");
  EXPECT_EQ(s["values"], "int8");
  EXPECT_EQ(s["sparsity"], 0.5);
  EXPECT_FALSE(s.contains("gptq"));
  EXPECT_EQ(s["embeddings"], "source");
}

// --target-bpw through the CLI: the report names each tensor's setting, the budget's
// refusal names the flag and the smallest size, and the flags it replaces are refused.
TEST(CliUpg, CompressToABudget) {
  TempDir dir;
  const std::string tiny = UPG_SOURCE_DIR "/tests/fixtures/tiny/llama", out = (dir / "b.upg").string();
  ProcessResult r = run_upg({"compress", tiny, "-o", out, "--target-bpw", "1.2", "--prune", "magnitude",
                             "--per-tensor", "-t", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "model.layers.0.mlp.down_proj.weight")) << r.out;
  EXPECT_TRUE(contains(r.out, "(int4-g") || contains(r.out, "(int8)")) << r.out;
  const ProcessResult low = run_upg({"compress", tiny, "-o", out, "--target-bpw", "0.1", "--prune", "magnitude"});
  EXPECT_EQ(low.exit_code, 1);
  // After the measuring lines, one line of error.
  const std::string last = low.err.substr(low.err.rfind('\n', low.err.size() - 2) + 1);
  EXPECT_TRUE(contains(last, "--target-bpw") && contains(last, "cheapest settings give")) << low.err;
  const ProcessResult both = run_upg({"compress", tiny, "-o", out, "--target-bpw", "1", "--values", "int4"});
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_TRUE(contains(both.err, "--values")) << both.err;
}

// Keeps the larger half of each row by magnitude (N:M: the n largest of each group) and
// quantizes with the row's absmax: not the compressor, just enough to fill every layout
// with real weights.
format::CompressedData compress(const std::vector<float>& w, int64_t rows, int64_t cols, const std::string& kind) {
  std::vector<format::SparseRow> out(static_cast<size_t>(rows));
  const int n = kind == "nm24" ? 2 : 4, m = kind == "nm24" ? 4 : 8;
  const bool nm = kind.starts_with("nm");
  const int group = nm ? m : int(cols);
  const int keep = nm ? n : int(cols / 2);
  std::vector<float> codebook(16);
  for (int i = 1; i < 16; ++i) codebook[size_t(i)] = float(i - 8) / 7.0f + (i == 8 ? 0.01f : 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w.data() + r * cols;
    auto& sr = out[size_t(r)];
    float absmax = 0;
    for (int64_t c = 0; c < cols; ++c) absmax = std::max(absmax, std::fabs(row[c]));
    const float unit = kind == "prime" ? float(nth_prime(127)) : kind == "codebook" ? 1.0f : 127.0f;
    sr.scale = absmax > 0 ? absmax / unit : 1.0f;
    for (int64_t g = 0; g < cols; g += group) {
      std::vector<uint32_t> idx(static_cast<size_t>(group));
      for (int i = 0; i < group; ++i) idx[size_t(i)] = uint32_t(g + i);
      std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(),
                        [&](uint32_t a, uint32_t b) { return std::fabs(row[a]) > std::fabs(row[b]); });
      std::sort(idx.begin(), idx.begin() + keep);
      for (int i = 0; i < keep; ++i) {
        const float x = row[idx[size_t(i)]] / sr.scale;
        int32_t code;
        if (kind == "prime") {
          code = nearest_prime_index(std::fabs(x), 127) | (x < 0 ? format::kPrimeSignBit : 0);
        } else if (kind == "codebook") {
          code = 1;
          for (int j = 2; j < 16; ++j)
            if (std::fabs(codebook[size_t(j)] - x) < std::fabs(codebook[size_t(code)] - x)) code = j;
        } else {
          code = int32_t(std::lround(std::clamp(x, -127.0f, 127.0f)));
        }
        sr.cols.push_back(idx[size_t(i)]);
        sr.codes.push_back(code);
      }
    }
  }
  if (nm) return format::encode_nm(cols, out, n, m);
  const auto enc = kind == "prime" ? format::Encoding::Prime : kind == "codebook" ? format::Encoding::Codebook
                                                                                  : format::Encoding::Int8;
  return format::encode_mdcsr(cols, out, enc, enc == format::Encoding::Codebook ? codebook : std::vector<float>{});
}

std::string kind_of(const std::string& name) {
  if (name.ends_with("q_proj.weight") || name.ends_with("o_proj.weight")) return "int8";
  if (name.ends_with("k_proj.weight")) return "prime";
  if (name.ends_with("v_proj.weight")) return "codebook";
  if (name.ends_with("gate_proj.weight") || name.ends_with("up_proj.weight")) return "nm24";
  if (name.ends_with("down_proj.weight")) return "nm48";
  return "";
}

TEST(CliUpg, RealModelDecompressesExactly) {
  const std::string model = model_path();
  if (model.empty()) GTEST_SKIP() << "model not found (set UPG_MODEL or run scripts/fetch-model.sh)";
  TempDir dir;
  const std::string upg = (dir / "smollm2.upg").string();
  {
    LoadOptions opts;
    opts.dequant_to = DType::F32;
    opts.keep_gguf_qk_rows = false;  // a UPG file holds Hugging Face's order
    const ModelSource src = load_model_source(model, opts);
    io::UpgHeader h;
    h.config_json = io::to_hf_config_json(src.config);
    h.compression_json = R"({"tool": "cli-upg-test", "prune": "magnitude", "sparsity": 0.5})";
    h.tokenizer_json = to_tokenizer_json(*src.tokenizer);
    h.tokenizer_config_json = to_tokenizer_config_json(*src.tokenizer);
    io::UpgWriter w(upg, h);
    for (const auto& [name, t] : src.weights.all()) {
      std::vector<float> f(static_cast<size_t>(t.numel()));
      convert_to_f32(t.dtype, t.data, f.data(), t.numel());
      const std::string kind = kind_of(name);
      if (!kind.empty()) {
        w.add_compressed(name, compress(f, t.rows(), t.cols(), kind));
      } else if (name == "model.embed_tokens.weight") {
        std::vector<int8_t> q(f.size());
        std::vector<float> scales(static_cast<size_t>(t.rows()));
        for (int64_t r = 0; r < t.rows(); ++r) {
          float absmax = 0;
          for (int64_t c = 0; c < t.cols(); ++c) absmax = std::max(absmax, std::fabs(f[size_t(r * t.cols() + c)]));
          scales[size_t(r)] = absmax > 0 ? absmax / 127 : 1;
          for (int64_t c = 0; c < t.cols(); ++c)
            q[size_t(r * t.cols() + c)] = int8_t(std::lround(f[size_t(r * t.cols() + c)] / scales[size_t(r)]));
        }
        w.add_dense(name + ".qweight", DType::I8, t.shape, io::testing::bytes_of(q));
        w.add_dense(name + ".scales", DType::F32, {t.rows()}, io::testing::bytes_of(scales));
      } else {
        w.add_dense(name, DType::F32, t.shape, io::testing::bytes_of(f));
      }
    }
    w.finish();
  }
  ProcessResult r = run_upg({"inspect", upg});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "compressed:   210 tensors")) << r.out;  // 30 layers x 7 linear weights

  const fs::path out = dir / "hf";
  r = run_upg({"decompress", upg, "-o", out.string()}, {}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_decompressed_equal(upg, out);
  const ModelSource back = load_model_source(out.string());
  EXPECT_EQ(back.config.num_layers, 30);
  ASSERT_TRUE(back.tokenizer.has_value());
  EXPECT_EQ(Tokenizer(*back.tokenizer).encode("Hello world"), (std::vector<int32_t>{19556, 905}));
  // For scripts/check-decompressed.py: UPG_KEEP_DECOMPRESSED=DIR keeps a copy.
  if (const char* keep = std::getenv("UPG_KEEP_DECOMPRESSED"); keep && *keep) {
    fs::remove_all(keep);
    fs::create_directories(keep);
    fs::copy(out, fs::path(keep) / "hf", fs::copy_options::recursive);
    fs::copy_file(upg, fs::path(keep) / "smollm2.upg");
  }
}

}  // namespace
}  // namespace upg::cli_test
