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

namespace upg::io {

// GGUF metadata value types (gguf_type in ggml).
enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);
bool gguf_type_is_integer(GgufType t);  // BOOL excluded

// ggml tensor type ids this engine reads.
enum GgmlType : uint32_t {
  GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8,
  GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_IQ4_NL = 20,
  GGML_IQ4_XS = 23, GGML_BF16 = 30,
};
// Name of any ggml type id ("Q4_K", "IQ2_XS", ...), or "unknown".
std::string ggml_type_name(uint32_t id);
// The DType for a supported ggml type id; nullopt otherwise.
std::optional<DType> ggml_to_dtype(uint32_t id);
// The ggml type id for a DType (throws upg::Error for types GGUF cannot hold).
uint32_t dtype_to_ggml(DType t);

struct GgufArray;

// One metadata value. Integers keep their raw bits (sign-extended for signed types);
// arrays are held behind a shared_ptr so values stay cheap to copy.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  uint64_t bits = 0;  // integer types and BOOL
  double number = 0;  // FLOAT32 / FLOAT64
  std::string str;    // STRING
  std::shared_ptr<const GgufArray> array;  // ARRAY
};

struct GgufArray {
  GgufType elem_type = GgufType::UINT8;
  // Exactly one of these is filled, chosen by elem_type.
  std::vector<uint64_t> ints;  // integer types and BOOL, raw bits as in GgufValue
  std::vector<double> numbers;
  std::vector<std::string> strings;
  std::vector<GgufArray> arrays;
  size_t size() const;
};

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
