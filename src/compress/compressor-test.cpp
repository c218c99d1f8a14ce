// End to end: compress the tiny Llama fixture with every layout and encoding, read the
// file back through the real loader, and require the decoded weights to equal the
// pruned and quantized reference exactly.
#include "compress/compressor.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/test-paths.h"
#include "compress/gptq.h"
#include "compress/sparsegpt.h"
#include "upg/io/upg-file.h"
#include "upg/core/error.h"
#include "upg/io/io.h"
#include "upg/engine/perplexity.h"
#include "upg/model/model.h"

namespace upg::compress {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / fmt::format("upg-compress-test-{}-{}", getpid(), counter()++);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

std::string tiny() { return test::fixture("tiny/llama"); }

std::vector<float> f32(const TensorView& t) {
  std::vector<float> v(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, v.data(), t.numel());
  return v;
}

nlohmann::json j_of(const std::string& upg) { return nlohmann::json::parse(io::read_upg_header(upg).compression_json); }

// What the layerwise compressor does to a weight whose inputs are the source model's (layer
// 0's q, k and v): SparseGPT's pruning, with GPTQ's rounding when asked. Returns the
// grids (empty without GPTQ).
std::vector<GridParams> reference_sweep(const CompressOptions& o, const Hessian& H, std::vector<float>& w,
                                        int64_t rows, int64_t cols) {
  const std::vector<float> u = inverse_factor(H, kSparseGptDamp);
  if (!o.gptq) {
    sparsegpt_prune(w, rows, cols, u, o.matrix.pattern, o.matrix.sparsity, 1, kSparseGptBlock);
    return {};
  }
  const Int8RowGrid int8(o.matrix.quant);
  const ValueSpec& v = o.matrix.values;
  const bool is_int4 = format::is_grouped(v.encoding) && !o.dense_int8_linears;
  const Int4GroupGrid int4(v.group_size, v.zero_point, o.matrix.quant, is_int4 ? v.bits() : 4);
  GptqOptions go;
  if (!o.dense_int8_linears) go.pattern = o.matrix.pattern, go.sparsity = o.matrix.sparsity;
  go.grid = is_int4 ? static_cast<const QuantGrid*>(&int4) : &int8;
  go.act_order = o.act_order;
  go.threads = 1;
  return gptq_sweep(w, rows, cols, H, u, go);
}

// Compresses the tiny model and checks every tensor of the result against the source.
void round_trip(CompressOptions o, const Calibration* cal = nullptr, const std::string& source = tiny()) {
  TempDir dir;
  o.source = source;
  o.output = (dir.path / "out.upg").string();
  o.quiet = true;
  o.calibration = cal;
  const CompressReport rep = compress_model(o);
  ASSERT_TRUE(fs::exists(o.output));
  for (const auto& e : fs::directory_iterator(dir.path)) EXPECT_EQ(e.path().filename(), "out.upg");  // no temp left
  EXPECT_EQ(rep.output_bytes, fs::file_size(o.output));

  ModelSource src = load_model_source(source, {});
  ModelSource out = io::load_upg(o.output, {});
  const NameFilter skip(o.skip_regex);
  int compressed = 0, later_layers = 0;
  for (const auto& [name, t] : src.weights.all()) {
    SCOPED_TRACE(name);
    const bool linear = is_compressible(name, t.shape.size()) && !skip.matches(name);
    if (linear && !o.dense_int8_linears) {
      ++compressed;
      auto it = out.compressed.find(name);
      ASSERT_NE(it, out.compressed.end());
      const format::CompressedMatrix& m = it->second;
      const bool int4 = format::is_grouped(o.matrix.values.encoding);
      EXPECT_EQ(m.layout, o.matrix.pattern.is_nm() ? format::Layout::NM
                          : int4                   ? format::Layout::Dense
                                                   : format::Layout::MdCsr);
      if (int4) {
        EXPECT_EQ(m.int4.group_size, o.matrix.values.group_size);
        EXPECT_EQ(m.int4.group_zeros.empty(), !o.matrix.values.zero_point);
      }
      EXPECT_EQ(m.encoding, o.matrix.values.encoding);
      // Pruning kept exactly the target count per row (zeros from quantization aside).
      const int64_t per_row = o.matrix.pattern.is_nm() ? t.shape[1] / o.matrix.pattern.m * o.matrix.pattern.n
                                                       : kept_per_row(t.shape[1], o.matrix.sparsity);
      auto tr = std::find_if(rep.tensors.begin(), rep.tensors.end(), [&](const auto& x) { return x.name == name; });
      ASSERT_NE(tr, rep.tensors.end());
      EXPECT_EQ(tr->kept, per_row * t.shape[0]);
      const bool layerwise = o.prune == PruneMethod::SparseGPT || o.gptq;
      // SparseGPT calibrates each group of matmuls on the pruned ones before it: only the
      // first group's inputs (layer 0's q, k and v) are those of the dense model, where the
      // reference below can start.
      if (!layerwise || (name.starts_with("model.layers.0.self_attn.") && !name.ends_with("o_proj.weight"))) {
        std::vector<float> ref;
        std::span<const float> norms;
        std::vector<float> w = f32(t), original;
        std::vector<GridParams> scales;
        if (layerwise) {
          original = w;
          scales = reference_sweep(o, *cal->hessians.at(name), w, t.shape[0], t.shape[1]);
        } else if (cal) {
          norms = cal->col_norms.at(name);
        }
        MatrixStats st;
        compress_matrix(w, t.shape[0], t.shape[1], norms, o.matrix, name, &st, &ref, original, scales);
        const std::vector<float> got = format::decode_dense(m);
        ASSERT_EQ(got.size(), ref.size());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], ref[i]) << "element " << i;
        EXPECT_EQ(st.kept, per_row * t.shape[0]);
        EXPECT_GT(st.rel_error(), 0.0);
        EXPECT_LT(st.rel_error(), 1.0);
        EXPECT_DOUBLE_EQ(st.err_sq, tr->err_sq);
      } else {
        ++later_layers;
      }
      EXPECT_FALSE(out.weights.contains(name));
    } else if (embedding_bits(o.embeddings) != 0 && name == "model.embed_tokens.weight") {
      ++compressed;
      auto it = out.compressed.find(name);
      ASSERT_NE(it, out.compressed.end());
      EXPECT_EQ(it->second.layout, format::Layout::Dense);
      EXPECT_EQ(it->second.encoding, format::grouped_encoding(embedding_bits(o.embeddings)));
      EXPECT_EQ(it->second.int4.group_size, kEmbeddingInt4Group);
      std::vector<float> ref;
      compress_matrix(f32(t), t.shape[0], t.shape[1], {}, embedding_int4_options(1, embedding_bits(o.embeddings)), name,
                      nullptr, &ref);
      EXPECT_EQ(format::decode_dense(it->second), ref);
      EXPECT_FALSE(out.weights.contains(name));
    } else if ((o.embeddings == EmbeddingStore::Int8 && name == "model.embed_tokens.weight") || linear) {
      const TensorView& q = out.weights.get(name + ".qweight");
      const TensorView& s = out.weights.get(name + ".scales");
      EXPECT_EQ(q.dtype, DType::I8);
      std::vector<float> w = f32(t);
      std::vector<GridParams> scales;
      // Dense GPTQ: only layer 0's q, k and v see the source model's inputs (as above).
      if (linear && o.gptq) {
        if (!name.starts_with("model.layers.0.self_attn.") || name.ends_with("o_proj.weight")) continue;
        scales = reference_sweep(o, *cal->hessians.at(name), w, t.shape[0], t.shape[1]);
      }
      const DenseInt8 ref = quantize_dense_int8(w, t.shape[0], t.shape[1], o.matrix.quant, name, nullptr, 1, scales);
      ASSERT_EQ(q.nbytes, ref.qweight.size());
      EXPECT_EQ(0, std::memcmp(q.data, ref.qweight.data(), q.nbytes));
      EXPECT_EQ(0, std::memcmp(s.data, ref.scales.data(), s.nbytes));
    } else {
      const TensorView& d = out.weights.get(name);
      EXPECT_EQ(d.dtype, t.dtype);
      EXPECT_EQ(d.shape, t.shape);
      ASSERT_EQ(d.nbytes, t.nbytes);
      EXPECT_EQ(0, std::memcmp(d.data, t.data, t.nbytes));
    }
  }
  EXPECT_EQ(int(out.compressed.size()), compressed);
  if (o.gptq) {
    EXPECT_EQ(j_of(o.output)["gptq"]["act_order"], o.act_order);
    const bool int4 = format::is_grouped(o.matrix.values.encoding) && !o.dense_int8_linears;
    EXPECT_EQ(j_of(o.output)["gptq"]["grid"], int4 ? o.matrix.values.name() + " groups" : "int8 per row");
  }
  if (o.prune == PruneMethod::SparseGPT && !o.dense_int8_linears) {
    EXPECT_GT(later_layers, 0);
    const auto j = nlohmann::json::parse(io::read_upg_header(o.output).compression_json);
    EXPECT_EQ(j["sparsegpt"]["sequential"], "input group");
    EXPECT_EQ(j["sparsegpt"]["asymmetric_blend"], kAsymmetricBlend);
  }
  EXPECT_EQ(out.config.hidden_size, src.config.hidden_size);

  const auto h = io::read_upg_header(o.output);
  const auto j = nlohmann::json::parse(h.compression_json);
  EXPECT_EQ(j["tool"], kToolVersion);
  EXPECT_EQ(j["pattern"], o.matrix.pattern.name());
  EXPECT_EQ(j["values"], o.matrix.values.name());
  EXPECT_EQ(j["prune"], prune_method_name(o.prune));
  EXPECT_EQ(j["source"]["files"][0]["file"], "model.safetensors");
  EXPECT_EQ(j["source"]["files"][0]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["calibration"].is_null(), cal == nullptr);
  EXPECT_TRUE(h.tokenizer_json.empty());  // the fixture has none, so neither has the file
}

CompressOptions opts(const char* pattern, const char* values, double sparsity = 0.5) {
  CompressOptions o;
  o.matrix.pattern = parse_pattern(pattern);
  o.matrix.values = parse_values(values);
  o.matrix.sparsity = o.matrix.pattern.is_nm() ? 1.0 - double(o.matrix.pattern.n) / o.matrix.pattern.m : sparsity;
  o.matrix.threads = 2;
  return o;
}

TEST(Compressor, UnstructuredInt8) { round_trip(opts("unstructured", "int8", 0.5)); }

CompressOptions int4_opts(const char* pattern, int group, bool zero_point, const char* values = "int4") {
  CompressOptions o = opts(pattern, values, 0.0);
  o.matrix.values.group_size = group;
  o.matrix.values.zero_point = zero_point;
  return o;
}

TEST(Compressor, DenseInt4) {
  for (int group : {32, 64, 128})
    for (bool zp : {false, true}) {
      SCOPED_TRACE(fmt::format("g{} {}", group, zp ? "zero points" : "symmetric"));
      round_trip(int4_opts("unstructured", group, zp));
    }
}

TEST(Compressor, DenseInt3Int2) {
  for (const char* values : {"int3", "int2"})
    for (auto [group, zp] : {std::pair{32, true}, {64, false}, {128, true}}) {
      SCOPED_TRACE(fmt::format("{} g{} {}", values, group, zp ? "zero points" : "symmetric"));
      round_trip(int4_opts("unstructured", group, zp, values));
    }
  auto o = int4_opts("unstructured", 64, true, "int3");
  o.embeddings = EmbeddingStore::Int3;
  round_trip(o);
}

TEST(Compressor, TwoFourInt4) {
  round_trip(int4_opts("2:4", 32, false));
  round_trip(int4_opts("2:4", 128, true));
}

TEST(Compressor, Int4RejectsUnstructuredSparsity) {
  TempDir dir;
  CompressOptions o = int4_opts("unstructured", 64, false);
  o.matrix.sparsity = 0.5;
  o.source = tiny();
  o.output = (dir.path / "bad.upg").string();
  o.quiet = true;
  try {
    compress_model(o);
    FAIL() << "no error";
  } catch (const ParamError& e) {
    EXPECT_EQ(e.param(), "sparsity");
  }
  o.matrix.sparsity = 0;
  o.matrix.values.group_size = 48;
  EXPECT_THROW(compress_model(o), ParamError);
  EXPECT_TRUE(fs::is_empty(dir.path));
}

// The int4 files run: perplexity of the compressed tiny model through the fast kernels
// agrees with the reference kernels (fp32 activations) and stays near the source's.
TEST(Compressor, Int4TinyPerplexity) {
  std::vector<int32_t> ids(96);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 7 + i / 5) % 200 + 3);
  ModelOptions mo;
  mo.n_threads = 2;
  mo.context_length = 64;
  mo.reference_kernels = true;
  const double source = perplexity(*Model::from_file(tiny(), mo), ids, 64).mean_nll;
  for (CompressOptions o : {int4_opts("unstructured", 32, true), int4_opts("unstructured", 128, false),
                            int4_opts("2:4", 64, false), int4_opts("unstructured", 32, true, "int3"),
                            int4_opts("unstructured", 64, false, "int2")}) {
    TempDir dir;
    o.source = tiny();
    o.output = (dir.path / "t.upg").string();
    o.quiet = true;
    compress_model(o);
    double nll[2];
    for (bool reference : {false, true}) {
      mo.reference_kernels = reference;
      nll[reference] = perplexity(*Model::from_file(o.output, mo), ids, 64).mean_nll;
    }
    SCOPED_TRACE(fmt::format("{} {} g{}: fast {} reference {} source {}", o.matrix.pattern.name(),
                             o.matrix.values.name(), o.matrix.values.group_size, nll[0], nll[1], source));
    ASSERT_TRUE(std::isfinite(nll[0]));
    EXPECT_NEAR(nll[0], nll[1], 0.02);
    // Random weights (a near-uniform model over 256 tokens): 4 and 3 bits move its NLL by
    // tenths (2 bits may move it further).
    if (o.matrix.values.bits() >= 3) {
      EXPECT_NEAR(nll[1], source, 0.5);
    }
  }
}
TEST(Compressor, UnstructuredInt8Absmax70) {
  auto o = opts("unstructured", "int8", 0.7);
  o.matrix.quant = QuantMethod::Absmax;
  round_trip(o);
}
TEST(Compressor, Prime127) { round_trip(opts("unstructured", "prime:127")); }
TEST(Compressor, Prime10000) { round_trip(opts("unstructured", "prime:10000", 0.3)); }
TEST(Compressor, Codebook) { round_trip(opts("unstructured", "codebook:16")); }
TEST(Compressor, TwoFour) { round_trip(opts("2:4", "int8")); }
TEST(Compressor, FourEight) { round_trip(opts("4:8", "int8")); }

TEST(Compressor, SkipAndInt8Embeddings) {
  auto o = opts("unstructured", "int8");
  o.skip_regex = R"(layers\.1\.|down_proj)";
  o.embeddings = EmbeddingStore::Int8;
  round_trip(o);
}

// A fixture loaded as the compressor's calibration model is (fp32 weights), and 300
// calibration ids spread over its vocabulary (the fixtures have no tokenizer).
std::unique_ptr<Model> calibration_model(const std::string& path) {
  ModelOptions mo;
  mo.load.dequant_to = DType::F32;
  mo.n_threads = 1;
  mo.max_ubatch = 512;  // as open_calibration: a calibration batch runs as one ubatch
  return Model::from_file(path, mo);
}
std::vector<int32_t> calibration_ids(const Model& model) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 300; ++i) ids.push_back((i * 37 + 11) % model.config().vocab_size);
  return ids;
}
bool every_linear(const std::string& name) { return is_compressible(name, 2); }

TEST(Compressor, WandaWithCalibration) {
  auto model = calibration_model(tiny());
  const std::vector<int32_t> ids = calibration_ids(*model);
  const Calibration cal = calibrate_tokens(*model, ids, 128);
  EXPECT_EQ(cal.tokens, 300);
  const auto& q = cal.col_norms.at("model.layers.0.self_attn.q_proj.weight");
  ASSERT_EQ(q.size(), 64u);
  for (float x : q) EXPECT_GT(x, 0.0f);
  EXPECT_EQ(cal.col_norms.at("model.layers.1.mlp.down_proj.weight").size(), 128u);
  auto o = opts("unstructured", "int8");
  o.prune = PruneMethod::Wanda;
  round_trip(o, &cal);
  auto o24 = opts("2:4", "int8");
  o24.prune = PruneMethod::Wanda;
  round_trip(o24, &cal);
}

TEST(Compressor, SparseGptWithCalibration) {
  auto model = calibration_model(tiny());
  const std::vector<int32_t> ids = calibration_ids(*model);
  const Calibration cal = calibrate_tokens(*model, ids, 128, every_linear, 2);
  const std::string l0 = "model.layers.0.";
  // q, k and v read one input, gate and up another: one Hessian each, shared.
  const auto& hq = cal.hessians.at(l0 + "self_attn.q_proj.weight");
  EXPECT_EQ(hq, cal.hessians.at(l0 + "self_attn.k_proj.weight"));
  EXPECT_EQ(hq, cal.hessians.at(l0 + "self_attn.v_proj.weight"));
  EXPECT_NE(hq, cal.hessians.at(l0 + "self_attn.o_proj.weight"));
  EXPECT_EQ(cal.hessians.at(l0 + "mlp.gate_proj.weight"), cal.hessians.at(l0 + "mlp.up_proj.weight"));
  EXPECT_NE(hq, cal.hessians.at(l0 + "mlp.gate_proj.weight"));
  EXPECT_FALSE(cal.hessians.contains("lm_head.weight"));
  EXPECT_EQ(hq->tokens, 300);
  // Its diagonal is the squared activation norm Wanda uses, and it is symmetric.
  const auto& down = *cal.hessians.at(l0 + "mlp.down_proj.weight");
  const auto& norms = cal.col_norms.at(l0 + "mlp.down_proj.weight");
  ASSERT_EQ(down.cols, 128);
  for (int64_t j = 0; j < down.cols; ++j) {
    EXPECT_NEAR(down.h[size_t(j * 129)], norms[size_t(j)] * norms[size_t(j)], 1e-3 * (1 + down.h[size_t(j * 129)]));
    EXPECT_EQ(down.h[size_t(j * 128 + 3)], down.h[size_t(3 * 128 + j)]);
  }
  // The compressor calibrates on the same ids, chunked the same way (512 tokens at most,
  // within the context), layer by layer.
  const Calibration first = calibrate_tokens(*model, ids, 512, every_linear, 2);
  for (const char* pattern : {"unstructured", "2:4"}) {
    auto o = opts(pattern, "int8");
    o.prune = PruneMethod::SparseGPT;
    o.calibration_tokens = ids;
    round_trip(o, &first);
  }
  // SparseGPT's 2:4 mask and updated weights, quantized to int4 afterwards.
  auto o4 = int4_opts("2:4", 32, true);
  o4.prune = PruneMethod::SparseGPT;
  o4.calibration_tokens = ids;
  round_trip(o4, &first);
  // Fused q/k/v and gate/up (Phi-3: one Hessian per fused weight, every row slice
  // rebound when the layer is replaced) and attention biases (Qwen2).
  for (const char* arch : {"tiny/phi3", "tiny/qwen2"}) {
    SCOPED_TRACE(arch);
    auto am = calibration_model(test::fixture(arch));
    const std::vector<int32_t> aids = calibration_ids(*am);
    const Calibration acal = calibrate_tokens(*am, aids, 512, every_linear, 2);
    auto ao = opts("2:4", "int8");
    ao.prune = PruneMethod::SparseGPT;
    ao.calibration_tokens = aids;
    round_trip(ao, &acal, test::fixture(arch));
  }
  // Skipped tensors stay dense in the file and in the calibration model.
  auto o = opts("unstructured", "int8", 0.3);
  o.prune = PruneMethod::SparseGPT;
  o.calibration_tokens = ids;
  o.skip_regex = R"(down_proj|layers\.1\.self_attn)";
  round_trip(o, &first);
}

// GPTQ in SparseGPT's sweep (pruned, 50% and 2:4; and activation order) and dense.
TEST(Compressor, GptqWithCalibration) {
  auto model = calibration_model(tiny());
  const std::vector<int32_t> ids = calibration_ids(*model);
  const Calibration first = calibrate_tokens(*model, ids, 512, every_linear, 2);
  for (const char* pattern : {"unstructured", "2:4"}) {
    SCOPED_TRACE(pattern);
    auto o = opts(pattern, "int8");
    o.prune = PruneMethod::SparseGPT;
    o.gptq = true;
    o.calibration_tokens = ids;
    round_trip(o, &first);
  }
  // The grouped grids: int4 dense (any pruning method: nothing is pruned), with activation
  // order, and 2:4 pruned in the same sweep; the embedding as int4 too; int3 and int2 dense.
  for (const char* pattern : {"unstructured", "2:4", "int3", "int2"}) {
    SCOPED_TRACE(pattern);
    const bool low = pattern[0] == 'i';
    auto o = int4_opts(low ? "unstructured" : pattern, 32, true, low ? pattern : "int4");
    o.prune = o.matrix.pattern.is_nm() ? PruneMethod::SparseGPT : PruneMethod::Magnitude;
    o.gptq = true;
    o.act_order = !o.matrix.pattern.is_nm();
    o.embeddings = std::string_view(pattern) == "int3" ? EmbeddingStore::Int3 : EmbeddingStore::Int4;
    o.calibration_tokens = ids;
    round_trip(o, &first);
  }
  auto o = opts("unstructured", "int8");
  o.prune = PruneMethod::SparseGPT;
  o.gptq = o.act_order = true;
  o.calibration_tokens = ids;
  round_trip(o, &first);
  o.dense_int8_linears = true;
  round_trip(o, &first);
  // Calibrating on fewer tokens: the record says how many.
  o.act_order = false;
  o.calib_tokens = 100;
  TempDir dir;
  o.source = tiny();
  o.output = (dir.path / "few.upg").string();
  o.quiet = true;
  compress_model(o);
  EXPECT_EQ(j_of(o.output)["calibration"]["tokens"], 100);
}

// The LM head through GPTQ on the final norm's output: stored on the embedding's int4
// grid, moved away from round-to-nearest, and the model runs.
TEST(Compressor, GptqHead) {
  auto model = calibration_model(tiny());
  auto o = int4_opts("unstructured", 32, true);
  o.gptq = o.gptq_head = true;
  o.embeddings = EmbeddingStore::Int4;
  o.calibration_tokens = calibration_ids(*model);
  TempDir dir;
  o.source = tiny();
  o.output = (dir.path / "head.upg").string();
  o.quiet = true;
  compress_model(o);
  EXPECT_EQ(j_of(o.output)["gptq"]["lm_head"], true);
  ModelSource src = load_model_source(tiny(), {});
  ModelSource out = io::load_upg(o.output, {});
  const std::string name = src.weights.contains("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight";
  const TensorView& t = src.weights.get(name);
  auto it = out.compressed.find(name);
  ASSERT_NE(it, out.compressed.end());
  EXPECT_EQ(it->second.int4.group_size, kEmbeddingInt4Group);
  std::vector<float> rtn;
  compress_matrix(f32(t), t.shape[0], t.shape[1], {}, embedding_int4_options(1), name, nullptr, &rtn);
  EXPECT_NE(format::decode_dense(it->second), rtn);
  auto m = Model::from_file(o.output);
  for (float x : m->forward({1, 2, 3})) ASSERT_TRUE(std::isfinite(x));
}

TEST(Compressor, GptqRejectsWhatItCannotDo) {
  TempDir dir;
  auto expect_param = [&](CompressOptions o, const char* param) {
    o.source = tiny();
    o.output = (dir.path / "bad.upg").string();
    o.quiet = true;
    try {
      compress_model(o);
      ADD_FAILURE() << "no error for " << param;
    } catch (const ParamError& e) {
      EXPECT_EQ(e.param(), param) << e.what();
    }
  };
  auto o = opts("unstructured", "prime:127");
  o.gptq = true;
  o.prune = PruneMethod::SparseGPT;
  expect_param(o, "values");
  o = opts("unstructured", "int8");
  o.gptq = true;
  o.prune = PruneMethod::Wanda;
  expect_param(o, "gptq");
  o = opts("unstructured", "int8");
  o.prune = PruneMethod::SparseGPT;
  o.act_order = true;
  expect_param(o, "act_order");
  o = opts("2:4", "int8");
  o.prune = PruneMethod::SparseGPT;
  o.gptq = o.act_order = true;
  expect_param(o, "act_order");
  o = opts("unstructured", "int8");
  o.calib_tokens = -1;
  expect_param(o, "calib_tokens");
  o = int4_opts("unstructured", 32, true);
  o.gptq_head = true;
  o.embeddings = EmbeddingStore::Int4;
  expect_param(o, "gptq_head");  // without GPTQ
  o.gptq = true;
  o.embeddings = EmbeddingStore::Int8;
  expect_param(o, "gptq_head");
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(Compressor, CompressedTinyRuns) {
  TempDir dir;
  auto o = opts("2:4", "int8");
  o.source = tiny();
  o.output = (dir.path / "t.upg").string();
  o.quiet = true;
  for (EmbeddingStore e : {EmbeddingStore::Source, EmbeddingStore::Int4, EmbeddingStore::Int3}) {
    o.embeddings = e;
    compress_model(o);
    auto model = Model::from_file(o.output);
    const std::vector<float> logits = model->forward({1, 2, 3, 4});
    ASSERT_EQ(logits.size(), size_t(4 * model->config().vocab_size));
    for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  }
}

TEST(Compressor, RejectsBadOptionsWithoutOutput) {
  TempDir dir;
  auto o = opts("2:4", "prime:127");
  o.source = tiny();
  o.output = (dir.path / "bad.upg").string();
  o.quiet = true;
  EXPECT_THROW(compress_model(o), Error);
  o = opts("unstructured", "int8");
  o.source = tiny();
  o.output = (dir.path / "bad.upg").string();
  o.quiet = true;
  o.skip_regex = "(unclosed";
  EXPECT_THROW(compress_model(o), Error);
  o.skip_regex.clear();
  o.prune = PruneMethod::Wanda;  // the fixture has no tokenizer to calibrate with
  EXPECT_THROW(compress_model(o), Error);
  o.prune = PruneMethod::Magnitude;
  o.source = (dir.path / "missing").string();
  EXPECT_THROW(compress_model(o), Error);
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(Compressor, UnwritableOutputFailsBeforeAnyWork) {
  // Calibration and pruning take minutes: the output path is checked before the source
  // is even opened, so here the missing directory is reported, not the missing source.
  TempDir dir;
  auto o = opts("unstructured", "int8");
  o.source = (dir.path / "missing-source").string();
  o.output = (dir.path / "missing-dir" / "out.upg").string();
  o.quiet = true;
  try {
    compress_model(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(o.output), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(Compressor, WandaOnDefaultModelCalibrates) {
  const std::string path = test::default_model_path();
  if (!fs::exists(path)) GTEST_SKIP() << "default model not found at " << path << " (set UPG_MODEL)";
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "a 135M-parameter forward over the calibration text is too slow under AddressSanitizer";
#endif
  const std::string text = test::fixture("calibration.txt");
  CalibrationInput in = open_calibration(path, text, 8192, 128);
  EXPECT_EQ(in.text_sha256.size(), 64u);
  const Calibration cal = calibrate_tokens(*in.model, in.tokens, 128);
  EXPECT_GT(cal.tokens, 500);
  EXPECT_EQ(cal.col_norms.at("model.layers.29.mlp.down_proj.weight").size(), 1536u);
}

TEST(Compressor, SparseGptMemory) {
  ModelConfig c;  // SmolLM2-135M: about 1.1 GB
  c.hidden_size = 576, c.intermediate_size = 1536, c.num_layers = 30, c.num_heads = 9, c.num_kv_heads = 3,
  c.head_dim = 64;
  EXPECT_NEAR(sparsegpt_memory_bytes(c, 134515008), 28.0 * 1536 * 1536 + 8.0 * 134515008, 1.0);
  // 31,752 calibration tokens: three streams of 576, the inputs of q, o, gate and down,
  // down's input in the compressed model, and the kept outputs of q, k, v, o, gate and up.
  EXPECT_NEAR(sparsegpt_memory_bytes(c, 134515008, 31752) - sparsegpt_memory_bytes(c, 134515008),
              4.0 * 31752 * (3 * 576 + 576 + 576 + 576 + 1536 + 1536 + 576 + 2 * 192 + 576 + 2 * 1536), 1.0);
  c.hidden_size = 5120, c.intermediate_size = 17920, c.num_layers = 40, c.num_heads = 40, c.head_dim = 0;
  EXPECT_GT(sparsegpt_memory_bytes(c, 14'659'507'200), 100e9);  // Phi-4-shaped: refused on this 24 GiB machine
}

TEST(Compressor, NameFilterAndCompressible) {
  EXPECT_TRUE(is_compressible("model.layers.0.self_attn.q_proj.weight", 2));
  EXPECT_TRUE(is_compressible("model.layers.3.mlp.gate_up_proj.weight", 2));
  EXPECT_FALSE(is_compressible("model.layers.0.self_attn.q_proj.bias", 1));
  EXPECT_FALSE(is_compressible("model.layers.0.input_layernorm.weight", 1));
  EXPECT_FALSE(is_compressible("model.embed_tokens.weight", 2));
  EXPECT_FALSE(is_compressible("lm_head.weight", 2));
  NameFilter f("mlp\\.(up|down)");
  EXPECT_TRUE(f.matches("model.layers.0.mlp.up_proj.weight"));
  EXPECT_FALSE(f.matches("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(NameFilter("").matches("anything"));
}

}  // namespace
}  // namespace upg::compress
