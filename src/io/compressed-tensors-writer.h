#pragma once
// Writes a model's weights as a compressed-tensors checkpoint (the format the PyPI package
// writes, llm-compressor produces and vLLM reads): the inverse of io/compressed-tensors.h
// for the UPG forms that have an exact counterpart (docs/FORMAT.md section 6):
//   dense int4 groups, +-zero points   pack-quantized, int 4-bit, strategy group
//   N:M int4                           the same, pruned weights as code = zero point
//   dense int8 rows (.qweight/.scales) int-quantized, int 8-bit, strategy channel
//   N:M 2:4 int8                       sparse-24-bitmask over int-quantized int8
//   MdCSR int8, other N:M int8         sparse-bitmask over int-quantized int8
//   F32 / F16 / BF16 tensors           as they are
// MdCSR prime and codebook values have none: planning refuses them, naming the tensor,
// before anything is written.
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "upg/io/io.h"

namespace upg::io {

class CompressedTensorsExport {
 public:
  // Plans every tensor of `src` (a loaded UPG file, which must outlive this); throws
  // upg::Error naming the first tensor whose form has no exact counterpart.
  explicit CompressedTensorsExport(const ModelSource& src);
  ~CompressedTensorsExport();
  CompressedTensorsExport(const CompressedTensorsExport&) = delete;
  CompressedTensorsExport& operator=(const CompressedTensorsExport&) = delete;

  // config.json's quantization_config as the package writes it (config groups by exact
  // module name, sparsity_config); null when no weight is quantized.
  nlohmann::json quantization_config() const;
  // Writes model.safetensors at `path` (a temp file renamed when complete), one module
  // in memory at a time; returns the file's size.
  uint64_t write(const std::string& path) const;
  // "pack-quantized 210, sparse-24-bitmask 0, ..., dense 63 tensors", for the CLI.
  std::string summary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upg::io
