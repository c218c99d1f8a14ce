#pragma once
// Compressed matrices decoded at load to dense rows: execution forms for kernels that run
// a layout as dense (the CPU's AVX2 target, the CUDA backend). The spec of each layout
// is docs/FORMAT.md; these are plain decodes, tested against format::decode_dense.
#include <cstdint>
#include <vector>

#include "upg/format/format.h"

namespace upg::kernels {

// The int8 codes of an MdCSR int8 or N:M int8 matrix as plain rows [rows, cols] (zero
// where a row keeps nothing); the row scales stay m.scales. Throws upg::Error for other
// encodings and for an entry past cols.
std::vector<int8_t> dense_int8_codes(const format::CompressedMatrix& m);

// Prime or codebook values decoded to dense fp16: each row divided by its largest
// magnitude (fp16 keeps 2^-11 of it), and that magnitude kept as the row's scale.
struct DenseF16Rows {
  int64_t rows = 0, cols = 0;
  std::vector<uint16_t> w;    // [rows, cols]
  std::vector<float> scales;  // [rows]
};
DenseF16Rows pack_dense_f16(const format::CompressedMatrix& m);

}  // namespace upg::kernels
