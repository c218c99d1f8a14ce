#pragma once
// Dequantization of ggml block types (every type upg/format/ggml-blocks.h describes), plus
// plain F32/F16/BF16 conversion, so every GGUF tensor can become F32, F16 or BF16 at load
// time (the float path, --dtype).
#include <cstddef>
#include <cstdint>
#include <span>

#include "upg/core/tensor.h"

namespace upg::io {

// Converts `n` elements (a whole number of blocks) of type `t` at `src` to fp32.
void dequantize_row(DType t, const std::byte* src, float* dst, int64_t n);

// Converts a [rows, cols] tensor of `src_type` into `dst_type` (F32, F16 or BF16, or
// src_type itself: rows copied as they are, how block-quantized Q/K rows are un-permuted
// for the integer kernels) at `dst`. Output row r comes from source row src_rows[r] when src_rows is non-empty (how
// Q/K rows are un-permuted), else from row r. Large tensors are split over threads.
// Throws upg::Error for an unsupported dst_type, a bad row map, or a block-quantized row
// that dequantizes to a NaN or infinity (naming the first such source row).
void convert_rows(DType src_type, const std::byte* src, int64_t rows, int64_t cols, DType dst_type, std::byte* dst,
                  std::span<const int64_t> src_rows = {});

}  // namespace upg::io
