#pragma once
// Test-only helpers for the UPG writer/reader tests: small compressed matrices of every
// layout and encoding, a tiny config and tokenizer, and an editable in-memory image of
// a safetensors file for writing corrupted copies.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors-reader.h"
#include "io/safetensors-writer.h"
#include "upg/io/upg-file.h"
#include "upg/format/format.h"
#include "upg/core/tensor.h"
#include "upg/format/primes.h"

namespace upg::io::testing {

inline const char* kTinyConfig = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "vocab_size": 3, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
  "tie_word_embeddings": true, "bos_token_id": 0, "eos_token_id": 1})";

inline const char* kTinyTokenizer = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
  "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
  "decoder": {"type": "ByteLevel"}})";

inline const char* kTinyTokenizerConfig = R"({"bos_token": "a", "eos_token": "b", "chat_template": "{{ x }}"})";

// Random kept columns and codes for `enc`. Row 0 keeps columns 0 and cols - 1 only, so a
// wide matrix needs padding entries (gaps over 255) and its last entry sits on the last
// column; the other rows keep about `keep` of their columns.
inline std::vector<format::SparseRow> random_rows(int64_t rows, int64_t cols, double keep, format::Encoding enc,
                                                  int codebook_size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  auto code = [&]() -> int32_t {
    switch (enc) {
      case format::Encoding::Int8: return int32_t(rng() % 127 + 1) * (rng() % 2 ? 1 : -1);
      case format::Encoding::Prime: return int32_t(rng() % kPrimeCount + 1) | (rng() % 2 ? format::kPrimeSignBit : 0);
      case format::Encoding::Codebook: return int32_t(rng() % uint32_t(codebook_size - 1) + 1);
      case format::Encoding::Int4:
      case format::Encoding::Int3:
      case format::Encoding::Int2: break;  // make_int4
    }
    return 0;
  };
  std::vector<format::SparseRow> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    auto& row = out[size_t(r)];
    row.scale = float(0.01 * double(r + 1));
    for (int64_t c = 0; c < cols; ++c) {
      const bool kept = r == 0 ? (c == 0 || c == cols - 1) : u(rng) < keep;
      if (!kept) continue;
      row.cols.push_back(uint32_t(c));
      row.codes.push_back(code());
    }
  }
  return out;
}

// Up to n kept columns per group of m (some groups keep fewer), int8 codes.
inline std::vector<format::SparseRow> random_nm_rows(int64_t rows, int64_t cols, int n, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<format::SparseRow> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    auto& row = out[size_t(r)];
    row.scale = float(0.02 * double(r + 1));
    for (int64_t g = 0; g < cols / m; ++g) {
      std::vector<uint32_t> pos(static_cast<size_t>(m));
      for (int i = 0; i < m; ++i) pos[size_t(i)] = uint32_t(i);
      std::shuffle(pos.begin(), pos.end(), rng);
      const int keep = (r + g) % 3 == 2 ? n - 1 : n;
      std::sort(pos.begin(), pos.begin() + keep);
      for (int i = 0; i < keep; ++i) {
        row.cols.push_back(uint32_t(g * m) + pos[size_t(i)]);
        row.codes.push_back(int32_t(rng() % 127 + 1) * (rng() % 2 ? 1 : -1));
      }
    }
  }
  return out;
}

// Grouped codes of `bits` bits, fp16 group scales and (with zeros) zero points for rows
// whose kept columns are set (dense rows: every column).
inline std::vector<format::Int4Groups> make_int4(std::vector<format::SparseRow>& rows, int64_t cols, int group,
                                                 bool zeros, uint32_t seed, int bits = 4) {
  std::mt19937 rng(seed);
  const uint32_t levels = 1u << bits;
  std::vector<format::Int4Groups> out(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    auto& row = rows[r];
    if (row.cols.empty())
      for (int64_t c = 0; c < cols; ++c) row.cols.push_back(uint32_t(c));
    row.codes.assign(row.cols.size(), 0);
    for (int32_t& c : row.codes) c = int32_t(rng() % levels);
    for (int64_t g = 0; g < format::int4_groups(cols, group); ++g) {
      out[r].scales.push_back(fp32_to_fp16(0.01f * float(rng() % 100 + 1)));
      if (zeros) out[r].zeros.push_back(uint8_t(rng() % levels));
    }
  }
  return out;
}

inline format::CompressedData dense_int4(int64_t rows, int64_t cols, int group, bool zeros, uint32_t seed,
                                         int bits = 4) {
  std::vector<format::SparseRow> r(static_cast<size_t>(rows));
  const auto groups = make_int4(r, cols, group, zeros, seed, bits);
  return format::encode_dense_grouped(format::grouped_encoding(bits), cols, r, groups, group);
}

inline format::CompressedData nm_int4(int64_t rows, int64_t cols, int n, int m, int group, bool zeros, uint32_t seed) {
  std::vector<format::SparseRow> r = random_nm_rows(rows, cols, n, m, seed);
  const auto groups = make_int4(r, cols, group, zeros, seed + 1);
  return format::encode_nm_int4(cols, r, groups, n, m, group);
}

inline std::vector<float> test_codebook(int k) {
  std::vector<float> cb(static_cast<size_t>(k));
  for (int i = 1; i < k; ++i) cb[size_t(i)] = float(i - k / 2) / float(k) + (i == k / 2 ? 0.5f : 0.0f);
  return cb;
}

struct NamedMatrix {
  std::string name;
  format::CompressedData data;
};

// One matrix per layout and encoding, named like the linear weights they stand for.
inline std::vector<NamedMatrix> every_kind() {
  using format::Encoding;
  std::vector<NamedMatrix> out;
  out.push_back({"model.layers.0.self_attn.q_proj.weight",
                 format::encode_mdcsr(600, random_rows(5, 600, 0.3, Encoding::Int8, 0, 1), Encoding::Int8)});
  out.push_back({"model.layers.0.self_attn.k_proj.weight",
                 format::encode_mdcsr(600, random_rows(4, 600, 0.2, Encoding::Prime, 0, 2), Encoding::Prime)});
  out.push_back({"model.layers.0.self_attn.v_proj.weight",
                 format::encode_mdcsr(300, random_rows(3, 300, 0.5, Encoding::Codebook, 16, 3), Encoding::Codebook,
                                      test_codebook(16))});
  out.push_back({"model.layers.0.mlp.gate_proj.weight", format::encode_nm(16, random_nm_rows(6, 16, 2, 4, 4), 2, 4)});
  // 24 columns at 4:8 leave 4 unused bits at the end of each row's positions.
  out.push_back({"model.layers.0.mlp.up_proj.weight", format::encode_nm(24, random_nm_rows(3, 24, 4, 8, 5), 4, 8)});
  return out;
}

inline UpgHeader tiny_header() {
  UpgHeader h;
  h.config_json = kTinyConfig;
  h.compression_json = R"({"tool": "upg test", "pattern": "mixed", "sparsity": 0.5})";
  h.tokenizer_json = kTinyTokenizer;
  h.tokenizer_config_json = kTinyTokenizerConfig;
  return h;
}

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

// An editable copy of a safetensors file: change tensors or metadata, write it back.
struct FileImage {
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<Tensor> tensors;

  explicit FileImage(const std::string& path) {
    SafetensorsFile st = read_safetensors(path);
    metadata = st.metadata;
    for (const auto& t : st.tensors)
      tensors.push_back({t.name, t.dtype, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes)});
  }
  Tensor& get(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("test: no tensor " + name);
  }
  template <class T>
  T* as(const std::string& name) {
    return reinterpret_cast<T*>(get(name).bytes.data());
  }
  void erase(const std::string& name) {
    std::erase_if(tensors, [&](const Tensor& t) { return t.name == name; });
  }
  std::string& meta(const std::string& key) {
    for (auto& [k, v] : metadata)
      if (k == key) return v;
    metadata.emplace_back(key, "");
    return metadata.back().second;
  }
  nlohmann::json tensors_json() { return nlohmann::json::parse(meta("upg.tensors")); }
  void set_tensors_json(const nlohmann::json& j) { meta("upg.tensors") = j.dump(); }
  void write(const std::string& path) const {
    std::vector<TensorView> views;
    for (const auto& t : tensors) {
      TensorView v;
      v.name = t.name;
      v.dtype = t.dtype;
      v.shape = t.shape;
      v.data = t.bytes.data();
      v.nbytes = t.bytes.size();
      views.push_back(std::move(v));
    }
    write_safetensors(path, views, metadata);
  }
};

}  // namespace upg::io::testing
