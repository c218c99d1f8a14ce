#pragma once
// ggml's block-quantized types (GGUF's Q4_0 ... IQ4_XS) as one description: every block
// unpacks to unsigned integer codes and, per sub-block of 16 or 32 elements, a scale d
// and an offset m, so that
//
//   value = d * code + m            (lut: value = d * kIq4Lut[code] + m)
//
// One source of truth for the block layouts: the float path (io/gguf-dequant) and the
// integer execution forms (kernels/cpu/block-quant) both unpack through here, so the
// bit-twiddling of each type is written once. The layouts follow ggml's ggml-common.h
// and dequantize_row_* (checked against gguf-py's dequantize in the io tests).
#include <cstdint>

#include "upg/core/tensor.h"

namespace upg::format {

struct GgmlBlockInfo {
  int elems = 0;       // elements per block: 32, or 256 for the K and XS types
  int sub = 0;         // elements per (d, m) pair: 16 or 32
  int code_bits = 0;   // codes fit in this many bits: 2, 3, 4, 5, 6 or 8
  bool lut = false;    // IQ4: codes index kIq4Lut
  bool has_min = false;  // m is given per sub-block; otherwise m = offset * d
  int offset = 0;      // when !has_min
};

// Throws upg::Error for a type that is not block-quantized.
GgmlBlockInfo ggml_block_info(DType t);

// IQ4_NL / IQ4_XS values (ggml's kvalues_iq4nl) plus 128, so they are unsigned bytes; the
// 128 is taken back by offset = -128.
extern const uint8_t kIq4Lut[16];

// Unpacks one block of type t: codes[elems], and d[elems / sub], m[elems / sub]. Throws
// upg::Error("a NaN or infinite block scale") for a corrupt
// block, which would turn its whole row into NaNs that reach the logits and sample
// nothing: the one check of both the float and the integer path (callers name the row).
void unpack_ggml_block(DType t, const uint8_t* block, uint8_t* codes, float* d, float* m);

// n elements (whole blocks) of type t to fp32 through unpack_ggml_block.
void dequantize_ggml(DType t, const uint8_t* src, float* dst, int64_t n);

}  // namespace upg::format
