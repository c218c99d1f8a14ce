#pragma once
// GGUF v3 (or v2) writer: metadata in insertion order, tensor infos, then the aligned data
// section. It writes exactly what it is given (no validation), so tests can also build
// deliberately broken files with it.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "upg/io/gguf-types.h"

namespace upg::io {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  // Pads the data section to `a` and records it as general.alignment (uint32).
  void set_alignment(uint32_t a);
  void set(std::string key, GgufValue v);  // replaces an existing key in place
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_string_array(std::string key, std::vector<std::string> v);
  void set_i32_array(std::string key, const std::vector<int32_t>& v);
  void set_f32_array(std::string key, const std::vector<float>& v);

  // `ne` in GGUF order (ne[0] contiguous); `data` is the raw bytes of ggml type `ggml_type`.
  // With `offset`, the info records that offset and no data is written for the tensor.
  void add_tensor(std::string name, uint32_t ggml_type, std::vector<uint64_t> ne, std::span<const std::byte> data,
                  std::optional<uint64_t> offset = std::nullopt);
  // Convenience for plain F32 data.
  void add_f32(std::string name, std::vector<uint64_t> ne, std::span<const float> data);

  std::vector<std::byte> build() const;
  // Through a temp file renamed into place (upg/io/atomic-file.h); throws upg::Error
  // naming the path.
  void write(const std::string& path) const;

  // Value builders for set().
  static GgufValue u32(uint32_t v);
  static GgufValue str(std::string v);
  static GgufValue array(GgufArray a);

 private:
  struct Tensor {
    std::string name;
    uint32_t ggml_type;
    std::vector<uint64_t> ne;
    std::vector<std::byte> data;
    std::optional<uint64_t> offset;
  };
  uint32_t version_;
  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace upg::io
