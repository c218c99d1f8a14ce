#pragma once
// Reads the safetensors format: an 8-byte little-endian header length, a JSON header,
// then raw tensor data. Every field is validated before a view is handed out, so a
// corrupt or hostile file yields upg::Error, never an out-of-bounds read.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/mapped-file.h"
#include "upg/core/tensor.h"

namespace upg::io {

// The safetensors crate refuses headers above this size; so do we, before allocating.
inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

struct SafetensorsFile {
  std::shared_ptr<MappedFile> file;  // keeps the views below valid
  // Zero-copy views into `file`, in header order. A view's data may be misaligned for
  // its dtype when the writer did not order tensors by alignment.
  std::vector<TensorView> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", in file order
  uint64_t data_start = 0;  // 8 + header length
};

// Throws upg::Error("<path>: ...") naming the tensor and field that is wrong.
SafetensorsFile read_safetensors(const std::string& path);
// The same on a file already in memory (MappedFile::from_bytes); errors name file->path().
SafetensorsFile read_safetensors(std::shared_ptr<MappedFile> file);

// "F32", "BF16", ... <-> DType, for the plain types safetensors can hold.
std::optional<DType> safetensors_dtype(std::string_view name);
// Throws upg::Error for block-quantized types, which safetensors cannot represent.
const char* safetensors_dtype_name(DType t);

}  // namespace upg::io
