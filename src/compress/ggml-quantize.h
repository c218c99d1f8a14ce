#pragma once
// Rows of floats as GGUF tensor data of a few ggml types, for `upg synth --gguf` (random
// weights for llama.cpp to run beside UPG) and the CUDA tests. Hand-written because
// nothing packaged here writes ggml blocks; the quantizers follow ggml's reference ones
// (quantize_row_q8_0: d = absmax / 127; quantize_row_q4_0: d = (signed max) / -8).
#include <cstddef>
#include <cstdint>
#include <span>

namespace upg::compress {

// Whether quantize_ggml_rows writes this ggml type: F16, Q8_0 or Q4_0.
bool ggml_type_writable(uint32_t type);
// Bytes of n values of a writable type (n a multiple of 32 for the block types).
size_t ggml_bytes(uint32_t type, int64_t n);
// x[0, n) as `type` into out[0, ggml_bytes(type, n)). Throws upg::Error for another type
// or a block type with n % 32 != 0.
void quantize_ggml_rows(uint32_t type, const float* x, int64_t n, std::span<std::byte> out);

}  // namespace upg::compress
