#pragma once
// UPG files, version 2 (docs/FORMAT.md): a safetensors container holding compressed
// linear weights (format::CompressedMatrix parts named "<W>.<part>"), the dense tensors
// that were not compressed, the tokenizer as U8 tensors and the config as metadata.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/mapped-file.h"
#include "upg/format/format.h"
#include "upg/io/io.h"
#include "upg/core/tensor.h"

namespace upg::io {

struct UpgHeader {
  std::string config_json;            // upg.config: the model's config.json
  std::string compression_json;       // upg.compression: tool version, source, method...
  std::string tokenizer_json;         // stored as tensor upg.tokenizer_json (U8)
  std::string tokenizer_config_json;  // stored as tensor upg.tokenizer_config_json (U8)
};

// Streams a UPG file tensor by tensor: no more than one tensor is held in memory, so a
// 14 GB Phi-4-shaped model can be written on a 24 GiB machine. Output goes to a temp
// file beside the target (upg/io/atomic-file.h), created by the constructor, so an
// unwritable path fails at once, and renamed on finish(); destroying an unfinished
// writer removes every temp file.
class UpgWriter {
 public:
  UpgWriter(std::string path, UpgHeader header);
  ~UpgWriter();
  UpgWriter(const UpgWriter&) = delete;
  UpgWriter& operator=(const UpgWriter&) = delete;

  // A tensor kept dense under its original name (F32, F16, BF16, or I8 for W.qweight).
  void add_dense(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> data);
  // A compressed linear weight `name` ([rows, cols]); its parts and its upg.tensors entry.
  void add_compressed(const std::string& name, const format::CompressedData& m);
  void finish();
  uint64_t bytes_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The metadata and tokenizer texts of a UPG file as stored (for `upg inspect` and `upg
// decompress`), without loading or validating the tensors; checks upg.version.
UpgHeader read_upg_header(const std::string& path);

// True when `path` is a safetensors file whose metadata has upg.version.
bool is_upg_file(const std::string& path);
// Loads a UPG file: config from upg.config, tokenizer from the U8 tensors, dense tensors
// into weights, compressed ones validated into ModelSource::compressed. Every rule of
// the spec is checked; a violation throws upg::Error naming the file and the tensor.
ModelSource load_upg(const std::string& path, const LoadOptions& opts);
// The same on a file already in memory (MappedFile::from_bytes, for the fuzz harness).
ModelSource load_upg(std::shared_ptr<MappedFile> file, const LoadOptions& opts);

}  // namespace upg::io
