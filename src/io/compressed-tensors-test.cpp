// compressed-tensors checkpoints (tests/fixtures/compressed-tensors, made by the PyPI
// package): which UPG form each scheme becomes, and one clear error for each corrupted
// or unsupported variant. The logits are checked in model/compressed-tensors-forward-test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/test-paths.h"
#include "io/safetensors-reader.h"
#include "io/safetensors-test-util.h"
#include "io/safetensors-writer.h"
#include "upg/core/error.h"
#include "upg/core/file-text.h"
#include "upg/core/tensor.h"
#include "upg/format/format.h"
#include "upg/io/io.h"

namespace upg::io {
namespace {

using testing::TempDir;

std::string variant_dir(const std::string& v) { return test::source_dir() + "/tests/fixtures/compressed-tensors/" + v; }

// A fixture's tensors and config, to edit and write to a temp directory.
struct Editable {
  SafetensorsFile file;
  std::vector<TensorView> tensors;
  nlohmann::json config;
  std::deque<std::vector<std::byte>> owned;

  explicit Editable(const std::string& v)
      : file(read_safetensors(variant_dir(v) + "/model.safetensors")),
        tensors(file.tensors),
        config(nlohmann::json::parse(read_file_text(variant_dir(v) + "/config.json", "config.json"))) {}
  TensorView& get(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("no tensor " + name);
  }
  void drop(const std::string& name) {
    std::erase_if(tensors, [&](const TensorView& t) { return t.name == name; });
  }
  // A writable copy of the tensor's bytes, now the tensor's data.
  std::byte* own(const std::string& name) {
    TensorView& t = get(name);
    auto& buf = owned.emplace_back(t.data, t.data + t.nbytes);
    t.data = buf.data();
    return buf.data();
  }
  nlohmann::json& weights(const char* group = "group_0") {
    return config["quantization_config"]["config_groups"][group]["weights"];
  }
  std::string write(const TempDir& d) const {
    write_safetensors(d.file("model.safetensors"), tensors);
    std::ofstream(d.file("config.json")) << config.dump();
    return d.path().string();
  }
};

const char* kQ = "model.layers.0.self_attn.q_proj";
const char* kGate = "model.layers.1.mlp.gate_proj";
const char* kDown = "model.layers.0.mlp.down_proj";

void expect_no_parts(const ModelSource& src) {
  for (const auto& [name, t] : src.weights.all())
    for (const char* p : {".weight_packed", ".weight_scale", ".weight_zero_point", ".weight_shape", ".compressed",
                          ".bitmask", ".row_offsets", ".shape"})
      EXPECT_FALSE(name.ends_with(p)) << name;
}

TEST(CompressedTensors, Int4GroupsBecomeDenseInt4WithTheFilesGroupsAndZeros) {
  ModelSource src = load_model_source(variant_dir("w4-mixed"));
  expect_no_parts(src);
  auto check = [&](const std::string& name, int group, bool zeros) {
    SCOPED_TRACE(name);
    auto it = src.compressed.find(name + ".weight");
    ASSERT_NE(it, src.compressed.end());
    EXPECT_EQ(it->second.layout, format::Layout::Dense);
    EXPECT_EQ(it->second.encoding, format::Encoding::Int4);
    EXPECT_EQ(it->second.int4.group_size, group);
    EXPECT_EQ(!it->second.int4.group_zeros.empty(), zeros);
    EXPECT_FALSE(src.weights.contains(name + ".weight"));
  };
  check(kQ, 32, false);
  check(kGate, 64, true);
  check(kDown, 128, false);
  EXPECT_TRUE(src.weights.contains("model.embed_tokens.weight"));  // the ignored embedding stays bf16
}

// UPG's int4 scales are fp16; fp32 scales that fp16 cannot hold run as dense fp32, the
// file's weights exactly: scale * (nibble - 8) for this symmetric group.
TEST(CompressedTensors, Int4ScalesBeyondFp16RunAsDenseFp32) {
  Editable e("w4-mixed");
  const std::string q = kQ;
  TensorView& sv = e.get(q + ".weight_scale");
  std::vector<float> scales(size_t(sv.numel()));
  convert_to_f32(sv.dtype, sv.data, scales.data(), sv.numel());
  for (float& s : scales) s *= 1.0f + 1.0f / (1 << 20);  // between two fp16 values
  auto& buf = e.owned.emplace_back(reinterpret_cast<const std::byte*>(scales.data()),
                                   reinterpret_cast<const std::byte*>(scales.data() + scales.size()));
  sv.dtype = DType::F32;
  sv.data = buf.data();
  sv.nbytes = buf.size();
  TempDir d;
  ModelSource src = load_model_source(e.write(d));
  ASSERT_EQ(src.warnings.size(), 1u);
  EXPECT_NE(src.warnings[0].find("do not fit fp16"), std::string::npos) << src.warnings[0];
  EXPECT_EQ(src.compressed.count(q + ".weight"), 0u);
  const TensorView& w = src.weights.get(q + ".weight");
  ASSERT_EQ(w.dtype, DType::F32);
  const TensorView& packed = e.get(q + ".weight_packed");
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t c = 0; c < 64; ++c) {
      const int code = int((uint32_t(packed.as<int32_t>()[r * 8 + c / 8]) >> (4 * (c % 8))) & 15);
      ASSERT_EQ(w.as<float>()[r * 64 + c], scales[size_t(r * 2 + c / 32)] * float(code - 8)) << r << "," << c;
    }
}

// Real checkpoints are sharded, and a module's parts may sit in different shards.
TEST(CompressedTensors, ShardedCheckpointMapsLikeTheSingleFile) {
  Editable e("w4-mixed");
  TempDir d;
  std::vector<TensorView> a, b;
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  for (size_t i = 0; i < e.tensors.size(); ++i) {
    const bool first = i % 2 == 0;  // alternate: a module's scale and packed codes part
    (first ? a : b).push_back(e.tensors[i]);
    index["weight_map"][e.tensors[i].name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(d.file("model-00001-of-00002.safetensors"), a);
  write_safetensors(d.file("model-00002-of-00002.safetensors"), b);
  std::ofstream(d.file("model.safetensors.index.json")) << index.dump();
  std::ofstream(d.file("config.json")) << e.config.dump();
  ModelSource sharded = load_model_source(d.path().string());
  ModelSource single = load_model_source(variant_dir("w4-mixed"));
  ASSERT_EQ(sharded.compressed.size(), single.compressed.size());
  for (const auto& [name, m] : single.compressed)
    EXPECT_EQ(format::decode_dense(sharded.compressed.at(name)), format::decode_dense(m)) << name;
}

TEST(CompressedTensors, ChannelScalesRepeatOverGroupsOf128) {
  ModelSource src = load_model_source(variant_dir("w4-channel"));
  const format::CompressedMatrix& m = src.compressed.at(std::string(kDown) + ".weight");
  EXPECT_EQ(m.int4.group_size, 128);
  ASSERT_EQ(m.int4.group_scales.size(), size_t(m.rows));  // 128 columns: one group a row
  EXPECT_FALSE(m.int4.group_zeros.empty());
}

TEST(CompressedTensors, Int8ChannelBecomesDenseInt8RowsInPlace) {
  ModelSource src = load_model_source(variant_dir("w8-channel"));
  expect_no_parts(src);
  const std::string w = std::string(kQ) + ".weight";
  EXPECT_FALSE(src.weights.contains(w));
  EXPECT_EQ(src.weights.get(w + ".qweight").dtype, DType::I8);
  EXPECT_EQ(src.weights.get(w + ".scales").shape, std::vector<int64_t>{64});
  EXPECT_FALSE(src.warnings.empty());  // its W8A8 scheme's activation quantization is UPG's own
}

TEST(CompressedTensors, SparseInt8BecomesNmOrMdcsrAndFloatsDense) {
  for (const char* v : {"sparse24-w8", "bitmask-w8"}) {
    SCOPED_TRACE(v);
    ModelSource src = load_model_source(variant_dir(v));
    expect_no_parts(src);
    int sparse = 0, dense = 0;
    for (const auto& [name, m] : src.compressed) {
      ++sparse;
      EXPECT_EQ(m.layout, std::string(v) == "sparse24-w8" ? format::Layout::NM : format::Layout::MdCsr) << name;
    }
    for (const auto& [name, t] : src.weights.all()) dense += name.ends_with(".qweight");
    EXPECT_EQ(sparse + dense, 14);  // 7 projections x 2 layers; dense only where a value is -128
    EXPECT_EQ(size_t(dense), src.warnings.size() - (std::string(v) == "sparse24-w8"));  // one line each
  }
  ModelSource f = load_model_source(variant_dir("sparse24"));
  expect_no_parts(f);
  EXPECT_EQ(f.weights.get(std::string(kQ) + ".weight").dtype, DType::F32);
}

// The package's symmetric int8 rounds a row's most negative weight to -128 in most rows
// (all of bitmask-w8's tensors have one), which UPG's sparse int8 layouts do not hold:
// those stay dense int8. Without it the same file is MdCSR, and a -128 put into the 2:4
// file makes that tensor dense; either way the weights are the file's, exactly.
TEST(CompressedTensors, SparseInt8IsExactInEveryForm) {
  // Edits the values of q_proj (`edit` of its int8 values and their count).
  auto load_edited = [](const char* v, const std::function<void(int8_t*, size_t)>& edit) {
    Editable e(v);
    for (auto& t : e.tensors)
      if (t.name.ends_with(".compressed")) edit(reinterpret_cast<int8_t*>(e.own(t.name)), t.nbytes);
    auto d = std::make_shared<TempDir>();
    ModelSource src = load_model_source(e.write(*d));
    return std::make_pair(std::move(src), std::move(e));
  };
  // The dense weight the file means: bitmask scatter times the row scale.
  auto expect_weights = [](const ModelSource& src, Editable& e, bool compressed) {
    const std::string w = std::string(kQ) + ".weight";
    const TensorView& vals = e.get(std::string(kQ) + ".compressed");
    const TensorView& mask = e.get(std::string(kQ) + ".bitmask");
    const TensorView& scale = e.get(std::string(kQ) + ".weight_scale");
    std::vector<float> want(64 * 64, 0.0f), s(64);
    convert_to_f32(scale.dtype, scale.data, s.data(), 64);
    int64_t k = 0;
    for (int64_t r = 0; r < 64; ++r)
      for (int64_t c = 0; c < 64; ++c)
        if ((mask.as<uint8_t>()[r * 8 + c / 8] >> (c % 8)) & 1) want[size_t(r * 64 + c)] = s[size_t(r)] * float(vals.as<int8_t>()[k++]);
    std::vector<float> got;
    if (compressed) {
      got = format::decode_dense(src.compressed.at(w));
    } else {
      const TensorView& q = src.weights.get(w + ".qweight");
      const TensorView& sc = src.weights.get(w + ".scales");
      for (int64_t i = 0; i < 64 * 64; ++i) got.push_back(sc.as<float>()[i / 64] * float(q.as<int8_t>()[i]));
    }
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;
  };
  {
    auto [src, e] = load_edited("bitmask-w8", [](int8_t* p, size_t n) { std::replace(p, p + n, int8_t(-128), int8_t(-127)); });
    EXPECT_EQ(src.compressed.size(), 14u);
    for (const auto& [name, m] : src.compressed) EXPECT_EQ(m.layout, format::Layout::MdCsr) << name;
    expect_weights(src, e, true);
  }
  {
    auto [src, e] = load_edited("bitmask-w8", [](int8_t*, size_t) {});  // as the package wrote it
    EXPECT_TRUE(src.compressed.empty());
    expect_weights(src, e, false);
  }
  {
    auto [src, e] = load_edited("sparse24-w8", [](int8_t* p, size_t) { p[1] = -128; });
    EXPECT_EQ(src.compressed.count(std::string(kQ) + ".weight"), 0u);
    EXPECT_NE(src.warnings.front().find("-128"), std::string::npos) << src.warnings.front();
    expect_weights(src, e, false);
  }
  {
    auto [src, e] = load_edited("sparse24-w8", [](int8_t*, size_t) {});
    EXPECT_EQ(src.compressed.at(std::string(kQ) + ".weight").layout, format::Layout::NM);
    expect_weights(src, e, true);
  }
}

TEST(CompressedTensors, CorruptPartsAreOneLineErrorsNamingTheTensor) {
  struct Case {
    const char* variant;
    std::function<void(Editable&)> edit;
    std::vector<std::string> parts;
  };
  const std::string q = kQ, gate = kGate;
  const std::vector<Case> cases = {
      {"w4-mixed", [&](Editable& e) { e.drop(q + ".weight_scale"); }, {q, "weight_scale", "missing"}},
      {"w4-mixed", [&](Editable& e) { e.get(q + ".weight_packed").shape = {64, 7}; e.get(q + ".weight_packed").nbytes = 64 * 7 * 4; },
       {q + ".weight_packed", "shape [64, 7]", "[64, 8]"}},
      {"w4-mixed",
       [&](Editable& e) { reinterpret_cast<int64_t*>(e.own(q + ".weight_shape"))[1] = 72; },
       {q + ".weight_packed", "shape [64, 8]", "[64, 9]"}},
      {"w4-mixed", [&](Editable& e) { e.drop(gate + ".weight_zero_point"); }, {gate, "weight_zero_point", "asymmetric"}},
      {"w4-mixed",
       [&](Editable& e) {
         reinterpret_cast<uint16_t*>(e.own(q + ".weight_scale"))[3] = 0x7fc0;  // bf16 NaN
       },
       {q + ".weight_scale", "not finite"}},
      {"w4-mixed", [&](Editable& e) { e.weights()["num_bits"] = 8; }, {"self_attn.k_proj.weight_packed", "8-bit", "group_0"}},
      {"w4-mixed", [&](Editable& e) { e.config["quantization_config"]["config_groups"]["group_0"]["format"] = "float-quantized"; },
       {"k_proj.weight_packed", "format 'float-quantized' is not supported"}},
      {"w4-mixed", [&](Editable& e) { e.config["quantization_config"]["quant_method"] = "gptq"; }, {"config.json", "'gptq'"}},
      {"w4-mixed", [&](Editable& e) { e.config["quantization_config"]["quantization_status"] = "frozen"; }, {"'frozen'"}},
      {"w4-mixed", [&](Editable& e) { e.config["quantization_config"]["config_groups"]["group_0"]["targets"] = {"re:nothing"}; },
       {"k_proj.weight_packed", "no config group"}},
      {"w4-mixed", [&](Editable& e) { e.config["quantization_config"]["config_groups"]["group_0"]["targets"] = {"re:(("}; },
       {"re:((", "not a valid regex"}},
      {"w8-channel", [&](Editable& e) { e.weights()["symmetric"] = false; }, {"down_proj.weight'", "asymmetric", "symmetric per-channel"}},
      {"w8-channel", [&](Editable& e) { e.weights()["strategy"] = "group"; e.weights()["group_size"] = 32; },
       {"down_proj.weight'", "int8 values only as symmetric per-channel"}},
      {"sparse24", [&](Editable& e) { e.own(q + ".bitmask")[0] = std::byte{0x07}; }, {q + ".bitmask", "exactly 2 of 4"}},
      {"sparse24", [&](Editable& e) { e.drop(q + ".bitmask"); }, {q, "bitmask", "missing"}},
      {"sparse24", [&](Editable& e) { e.config["quantization_config"]["sparsity_config"]["format"] = "marlin-24"; },
       {"down_proj.compressed", "'marlin-24' is not supported"}},
      {"bitmask-w8",
       [&](Editable& e) { auto& t = e.get(q + ".compressed"); t.shape[0] -= 1; t.nbytes -= 1; },
       {q + ".compressed", "does not match"}},
      {"bitmask-w8", [&](Editable& e) { e.drop(q + ".weight_scale"); }, {q, "weight_scale", "missing"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.parts.front());
    Editable e(c.variant);
    c.edit(e);
    TempDir d;
    const std::string dir = e.write(d);
    try {
      load_model_source(dir);
      ADD_FAILURE() << "loaded";
    } catch (const Error& err) {
      const std::string msg = err.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      for (const auto& p : c.parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
}

}  // namespace
}  // namespace upg::io
