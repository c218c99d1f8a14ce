#pragma once
// Tensor data regions of a file must not share bytes: two tensors at one offset, or an
// offset shifted into a neighbour, are signs of a corrupt or hand-edited file that would
// otherwise load as silently wrong weights. Used by the GGUF and safetensors readers (and
// so by UPG files, which are safetensors).
#include <cstdint>
#include <string_view>
#include <vector>

namespace upg::io {

struct DataRegion {
  std::string_view name;
  uint64_t begin = 0;  // offset into the data section
  uint64_t size = 0;   // empty regions overlap nothing
};

// Throws upg::Error("<path>: tensors \"a\" (bytes [x, y)) and \"b\" (bytes [z, w)) overlap"), names escaped.
void check_disjoint(std::vector<DataRegion> regions, std::string_view path);

}  // namespace upg::io
