#pragma once
// Streaming safetensors writer. The header (every tensor's name, dtype and shape) is
// fixed up front, so each tensor's place in the file is known and its bytes can be
// written whenever they are ready, in pieces, without holding the model in memory.
// Output goes to a temp file beside `path` (upg/io/atomic-file.h) renamed on finish(): an
// interrupted run never leaves a truncated file under the final name.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "upg/core/tensor.h"

namespace upg::io {

class AtomicFile;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;  // plain types only
  std::vector<int64_t> shape;
};

class SafetensorsWriter {
 public:
  // Validates the entries (plain dtypes, unique non-empty names, no "__metadata__",
  // sizes that fit) and writes the header to the temp file. Throws upg::Error.
  SafetensorsWriter(std::string path, std::vector<SafetensorsEntry> entries,
                    std::vector<std::pair<std::string, std::string>> metadata = {});
  ~SafetensorsWriter();  // without finish(), removes the temp file
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends `bytes` to tensor `name`. Tensors may be written in any order; one tensor's
  // pieces are appended in call order and must not exceed its size.
  void write(std::string_view name, std::span<const std::byte> bytes);
  // Checks every tensor is complete, flushes to disk and renames to the final path.
  void finish();

  const std::string& path() const { return path_; }
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  struct Slot {
    SafetensorsEntry entry;
    uint64_t begin = 0, size = 0, written = 0;
  };
  std::string path_;
  std::vector<Slot> slots_;  // in file (data) order
  uint64_t data_start_ = 0, file_bytes_ = 0;
  std::unique_ptr<AtomicFile> out_;
  bool finished_ = false;
};

// Convenience for tensors already in memory: writes them all and finishes.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace upg::io
