#pragma once
// GGUF v2/v3 container reader. Everything in the file is validated before it is trusted:
// counts against the bytes left, string lengths, tensor extents, types and dims, so a
// corrupted file ends in one upg::Error line instead of a crash or a huge allocation.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/mapped-file.h"
#include "upg/core/tensor.h"
#include "upg/io/gguf-types.h"

namespace upg::io {


// Short human-readable rendering (arrays abbreviated after `max_items`).
std::string gguf_value_to_string(const GgufValue& v, size_t max_items = 8);

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  DType dtype = DType::F32;
  std::vector<int64_t> ne;     // GGUF order: ne[0] is the contiguous (innermost) dim
  uint64_t offset = 0;         // relative to the data section
  uint64_t nbytes = 0;
  const std::byte* data = nullptr;  // into the mapping, valid while the GgufFile's file() lives

  int64_t numel() const;
  // PyTorch order (ne reversed), outermost first.
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  // Maps and parses `path`. Throws upg::Error("<path>: <what>") on any bad input.
  static GgufFile open(const std::string& path);
  static GgufFile parse(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed accessors. get_* throws "<path>: metadata key '<key>' is missing" when absent;
  // every accessor throws "<path>: metadata key '<key>': expected <t>, found <u>" on a
  // type mismatch. Integer accessors accept any integer type whose value fits.
  uint32_t get_u32(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  float get_f32(std::string_view key) const;  // FLOAT32 or FLOAT64
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  const GgufArray& get_array(std::string_view key) const;

  // Same, but nullopt when the key is absent.
  std::optional<uint32_t> opt_u32(std::string_view key) const;
  std::optional<int32_t> opt_i32(std::string_view key) const;
  std::optional<float> opt_f32(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  std::optional<std::string> opt_string(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  const GgufValue& require(std::string_view key) const;
  [[noreturn]] void type_error(std::string_view key, const char* expected, const GgufValue& v) const;
  int64_t get_int(std::string_view key, const GgufValue& v, int64_t lo, int64_t hi, const char* expected) const;

  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace upg::io
