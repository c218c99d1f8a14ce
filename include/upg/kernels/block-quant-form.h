#pragma once
// GGUF block-quantized weights (Q4_0 ... IQ4_XS) in the backends' execution form: integer
// codes and fp16 sub-block scales, repacked once at load from ggml's blocks
// (upg/format/ggml-blocks.h). The CPU multiplies them with int8 activations
// (kernels/cpu/block-quant.h says how); the CUDA backend uploads the same form and runs
// it with fp32 activations, so both read one description of the twelve types.
//
// Why one form for twelve types: every ggml type is value = d * code + m per sub-block
// of 16 or 32 columns (IQ4 through a 16-entry table), so one kernel, with the code
// width, sub-block size, table and offset as parameters, runs them all.
//
// 4-bit codes are stored two to a byte, so Q4_0, Q4_1, IQ4_NL and IQ4_XS stay the size of
// the file (and Q4_K within 11% of it: its 6-bit scales become fp16). Other widths use
// bit planes, one bit per column in a 64-bit word per 64 columns: 5- and 6-bit codes
// (Q5_*, Q6_K) keep their low 4 bits as nibbles and their high bits as planes, 2- and
// 3-bit codes (Q2_K, Q3_K) are planes only, so every type takes about the bits the file
// gives it (AVX-512 adds a plane with one masked byte add, the mask being the word
// itself). Q8_0 takes a byte per code. docs/KERNELS.md has the sizes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "upg/core/tensor.h"
#include "upg/format/format.h"

namespace upg::kernels {

struct BlockQuantRows {
  DType type = DType::F32;  // the GGUF type it came from
  int64_t rows = 0, cols = 0;
  int64_t padded_cols = 0;  // cols rounded up to 64: whole vectors; padding codes 0, scales 0
  // Columns per (d, m) pair: 16 or 32 (GGUF), 32, 64 or 128 (UPG int4 groups, whose last
  // one may be partial: subs rounds up).
  int sub = 32;
  // 4: columns 64v + k and 64v + 32 + k share byte 32v + k (low, high nibble); 5 and 6:
  // those nibbles, then per 64 columns bits - 4 words whose bit i is bit 4 + j of column
  // 64v + i (word j); 2 and 3: per 64 columns `bits` such words for bits 0 .. bits - 1,
  // no nibbles; 8: a byte each.
  int bits = 4;
  bool lut = false;         // 4-bit codes index format::kIq4Lut
  bool has_min = false;     // m per sub-block; otherwise m = offset * d
  float offset = 0;
  int64_t subs = 0;         // ceil(padded_cols / sub)
  std::vector<uint8_t> codes;  // [rows, row_bytes()], then 64 bytes of padding
  std::vector<uint16_t> d;     // [rows, subs] fp16
  std::vector<uint16_t> m;     // [rows, subs] fp16 when has_min
  int64_t row_bytes() const { return padded_cols * bits / 8; }
  const uint8_t* row_codes(int64_t r) const { return codes.data() + r * row_bytes(); }
  // Bits held as nibbles (4 for 4-6 bit codes, 0 for 2 and 3), and the planes of a row:
  // planes() words per 64 columns, for bits nibble_bits() .. bits - 1.
  int nibble_bits() const { return bits >= 4 && bits <= 6 ? 4 : 0; }
  int planes() const { return bits <= 6 ? bits - nibble_bits() : 0; }
  const uint8_t* row_high(int64_t r) const { return row_codes(r) + (nibble_bits() ? padded_cols / 2 : 0); }
  // The byte of a row's planes that holds column c's bit of plane j (at bit c % 8).
  int64_t plane_byte(int64_t c, int j) const { return ((c / 64) * planes() + j) * 8 + (c % 64) / 8; }
  const uint16_t* row_d(int64_t r) const { return d.data() + r * subs; }
  const uint16_t* row_m(int64_t r) const { return m.data() + r * subs; }
  size_t bytes() const { return size_t(rows * row_bytes()) + (d.size() + m.size()) * 2; }
};

// Calls run.template operator()<Bits, Sub, Lut>() for m's form: one list of the forms
// the SIMD kernels instantiate (IQ4 is 4-bit with 32-column sub-blocks).
// block_quant_form only makes these.
template <class Run>
void for_form(const BlockQuantRows& m, Run&& run) {
  if (m.bits == 8) return run.template operator()<8, 32, false>();
  if (m.bits == 6) return run.template operator()<6, 16, false>();
  if (m.bits == 5) return run.template operator()<5, 32, false>();
  if (m.bits == 3 || m.bits == 2) {  // GGUF Q3_K / Q2_K (16), UPG int3 / int2 groups
    const auto planes = [&]<int Bits>() {
      if (m.sub == 16) return run.template operator()<Bits, 16, false>();
      if (m.sub == 32) return run.template operator()<Bits, 32, false>();
      if (m.sub == 64) return run.template operator()<Bits, 64, false>();
      run.template operator()<Bits, 128, false>();
    };
    if (m.bits == 3) return planes.template operator()<3>();
    return planes.template operator()<2>();
  }
  if (m.lut) return run.template operator()<4, 32, true>();
  if (m.sub == 32) return run.template operator()<4, 32, false>();
  if (m.sub == 64) return run.template operator()<4, 64, false>();
  if (m.sub == 128) return run.template operator()<4, 128, false>();
  run.template operator()<4, 16, false>();
}

// Repacks a [rows, cols] tensor of ggml blocks. Throws upg::Error for a type that is not
// block-quantized, for a corrupt block (format::unpack_ggml_block) and for a scale that
// fp16 cannot hold (--dtype f32 would still load it).
BlockQuantRows pack_block_quant(DType type, const std::byte* data, int64_t rows, int64_t cols);
// Code c of a packed row, any form (the scalar reference and the tests read it so).
int block_quant_code(const BlockQuantRows& m, const uint8_t* row, int64_t c);
// The same in parts, so a caller can let go of each part of `data` once it is packed:
// the form with no row packed yet, then rows [r0, r1) of `data` (the whole tensor).
BlockQuantRows block_quant_form(DType type, int64_t rows, int64_t cols);
void pack_block_quant_rows(BlockQuantRows& m, const std::byte* data, int64_t r0, int64_t r1);
// A UPG grouped matrix (docs/FORMAT.md 4.3: dense int4, int3, int2, or N:M int4) in the
// same form: its codes are already in the form's order (nibbles, or bit planes for 3 and
// 2 bits), so dense rows are copied as they are; a group of G columns is a
// sub-block of G, symmetric groups take offset -8, -4 or -2 (as Q4_0) and zero points become the
// min -d * z (as Q4_1). Throws upg::Error for another layout or
// encoding, or a min past fp16's range.
BlockQuantRows int4_block_form(const format::CompressedMatrix& m);
// The same codes, d and m widened to 4-bit nibbles: a 2- or 3-bit form (bit planes) for a
// kernel that reads only nibbles (the CUDA backend's integer GEMV and GEMM), at 4 bits a
// code instead of 2 or 3. Throws upg::Error for another width.
BlockQuantRows nibble_form(const BlockQuantRows& m);

}  // namespace upg::kernels
