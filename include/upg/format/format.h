#pragma once
// The UPG compressed-weight layouts (docs/FORMAT.md is the normative spec). Plain data:
// views over memory owned elsewhere (an mmap'd UPG file, or a *Data owner below), so a
// loaded file is used in place. Kernels take a CompressedMatrix and switch on nothing
// but its layout and encoding.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace upg::format {

enum class Layout : uint8_t { MdCsr, NM, Dense };
// Int4, Int3 and Int2 are the grouped encodings (docs/FORMAT.md 4.3): codes of that many
// bits with an fp16 scale (and optional zero point) per group of columns. Code that
// handles all three asks grouped_bits(); the view and builder types keep the Int4 name
// of the first of them.
enum class Encoding : uint8_t { Int8, Prime, Codebook, Int4, Int3, Int2 };

const char* layout_name(Layout l);      // "mdcsr", "nm", "dense"
const char* encoding_name(Encoding e);  // "int8", "prime", "codebook", "int4", "int3", "int2"
// Whether the spec defines this pair (dense: int4, int3, int2; nm: int8 and int4;
// mdcsr: int8, prime, codebook).
bool layout_allows(Layout l, Encoding e);
// Inverse of the above for upg.tensors metadata; throws upg::Error naming `what` (the
// tensor) for an unknown name.
Layout parse_layout(std::string_view name, const std::string& what);
Encoding parse_encoding(std::string_view name, const std::string& what);

// Prime codes: bit 15 the sign, bits 0-14 the index (0 = zero, 1..10000 = i-th prime).
constexpr uint16_t kPrimeSignBit = 0x8000;
constexpr uint16_t kPrimeIndexMask = 0x7fff;
constexpr int64_t kMaxCodebookSize = 65536;

// N:M geometry. M is 2, 4, 8 or 16 and 1 <= N < M; cols must be a multiple of M.
// Each row's positions start on a byte boundary: a row holds ceil(values * bits / 8)
// bytes, the unused high bits of its last byte are zero.
int nm_bits(int m);  // log2(M); throws upg::Error for an unsupported M
int64_t nm_values_per_row(int64_t cols, int n, int m);          // cols / M * N
int64_t nm_position_bytes_per_row(int64_t cols, int n, int m);  // ceil(values * bits / 8)
// Position of value k within a row's packed positions (bit k * bits, little-endian).
inline int nm_position(const uint8_t* row_positions, int64_t k, int bits) {
  const int64_t bit = k * bits;
  // bits divides 8 or is 3: a field straddles at most two bytes.
  unsigned v = row_positions[bit >> 3] >> (bit & 7);
  if ((bit & 7) + bits > 8) v |= unsigned(row_positions[(bit >> 3) + 1]) << (8 - (bit & 7));
  return int(v & ((1u << bits) - 1));
}

// int4 codes (docs/FORMAT.md 4.3): each 64 values of a row in 32 bytes, value 64v + i
// (i < 32) the low nibble of byte 32v + i, value 64v + 32 + i its high nibble; the order
// the CPU's 4-bit kernels read (kernels::BlockQuantRows).
constexpr int kInt4DefaultZero = 8;  // the zero point of every group without zero points
bool int4_group_size_ok(int g);      // 32, 64 or 128
int64_t int4_row_bytes(int64_t values);            // ceil(values / 64) * 32
int64_t int4_groups(int64_t cols, int group_size);  // ceil(cols / group_size)
inline int int4_code(const uint8_t* row, int64_t k) {
  return (row[(k / 64) * 32 + k % 32] >> (k % 64 < 32 ? 0 : 4)) & 0x0F;
}
inline void set_int4_code(uint8_t* row, int64_t k, int code) {
  uint8_t& b = row[(k / 64) * 32 + k % 32];
  b = uint8_t(k % 64 < 32 ? (b & 0xF0) | (code & 0x0F) : (b & 0x0F) | ((code & 0x0F) << 4));
}

// int3 and int2 codes (docs/FORMAT.md 4.3): bit planes. Each 64 values of a row take
// `bits` little-endian 64-bit words, word j holding bit j of every value (bit i of it for
// value 64v + i): the form the CPU's 2- and 3-bit kernels read (GGUF Q2_K / Q3_K run so).
int grouped_bits(Encoding e);           // 4, 3, 2 for Int4, Int3, Int2; 0 for the others
inline bool is_grouped(Encoding e) { return grouped_bits(e) != 0; }
Encoding grouped_encoding(int bits);    // the inverse; throws upg::Error for another width
inline int grouped_default_zero(int bits) { return 1 << (bits - 1); }  // 8, 4, 2
int64_t grouped_row_bytes(int bits, int64_t values);  // ceil(values / 64) * 8 * bits
inline int plane_code(const uint8_t* row, int64_t k, int bits) {
  const uint8_t* word = row + (k / 64) * 8 * bits + (k % 64) / 8;
  int code = 0;
  for (int j = 0; j < bits; ++j) code |= ((word[8 * j] >> (k % 8)) & 1) << j;
  return code;
}
inline void set_plane_code(uint8_t* row, int64_t k, int bits, int code) {
  uint8_t* word = row + (k / 64) * 8 * bits + (k % 64) / 8;
  for (int j = 0; j < bits; ++j) {
    const uint8_t bit = uint8_t(1u << (k % 8));
    word[8 * j] = uint8_t((code >> j) & 1 ? word[8 * j] | bit : word[8 * j] & ~bit);
  }
}
// Code k of a row of any grouped encoding.
inline int grouped_code(const uint8_t* row, int64_t k, int bits) {
  return bits == 4 ? int4_code(row, k) : plane_code(row, k, bits);
}
inline void set_grouped_code(uint8_t* row, int64_t k, int bits, int code) {
  if (bits == 4) set_int4_code(row, k, code);
  else set_plane_code(row, k, bits, code);
}

// MdCSR: CSR whose column indices are stored as uint8 gaps. Row r owns entries
// [row_pointers[r], row_pointers[r+1]); an entry's column is the previous entry's column
// in the row plus its delta (the previous column is 0 before a row's first entry). Gaps
// over 255 are bridged by padding entries (delta 255, value zero) that count as entries.
struct MdCsrView {
  std::span<const uint32_t> row_pointers;  // [rows + 1]
  std::span<const uint8_t> delta_indices;  // [entries]
  std::span<const int8_t> values;          // [entries]   Encoding::Int8
  std::span<const uint16_t> prime_indices; // [entries]   Encoding::Prime / Codebook
  std::span<const float> codebook;         // [K]         Encoding::Codebook, codebook[0] == 0
};

// N:M: in each group of M consecutive columns of a row at most N values are kept.
// values [rows, cols * N / M] in column order (zero where a group keeps fewer);
// positions [rows, cols * N / M * log2(M) / 8]: each value's index inside its group,
// log2(M) bits each, packed little-endian (value k of a row at bit k * log2(M)).
struct NMView {
  int n = 0, m = 0;
  std::span<const int8_t> values;
  std::span<const uint8_t> positions;
};

// Grouped values (int4 of the dense and N:M layouts, int3 and int2 of dense): weight =
// fp16 group_scales[r, g] * (code - zero), g = column / group_size, zero =
// group_zeros[r, g] or grouped_default_zero(bits).
struct Int4View {
  int group_size = 0;
  std::span<const uint8_t> codes;          // [rows, grouped_row_bytes(bits, values per row)]
  std::span<const uint16_t> group_scales;  // [rows, int4_groups(cols, group_size)] fp16
  std::span<const uint8_t> group_zeros;    // the same shape, or empty (symmetric)
};

struct CompressedMatrix {
  Layout layout = Layout::MdCsr;
  Encoding encoding = Encoding::Int8;
  int64_t rows = 0, cols = 0;
  std::span<const float> scales;  // [rows]: weight = scales[r] * decoded value (not int4)
  MdCsrView mdcsr;
  NMView nm;  // int4: n, m and positions; the values are in int4
  Int4View int4;  // every grouped encoding (Int4, Int3, Int2)

  // Stored entries (MdCSR incl. padding; N:M rows*cols*N/M; dense rows*cols).
  int64_t entries() const;
  int64_t values_per_row() const;  // N:M and dense: cols / M * N or cols
  size_t bytes() const;     // total bytes of every part
};

// Checks every rule of the spec (row pointers start at 0, never decrease, end at the
// entry count; columns stay below cols; prime index <= 10000; codebook index < K and
// codebook[0] == 0; positions inside their group and no two values on one position;
// part sizes agree with the shape). Throws upg::Error naming `what` (the tensor).
void validate(const CompressedMatrix& m, const std::string& what);

// The weight of grouped value k of row r (in dense column c), as 4.3 defines it.
float int4_value(const CompressedMatrix& m, int64_t r, int64_t k, int64_t c);

// The unscaled weight of MdCSR entry k: the int8 value, the signed prime, or the codebook
// entry (0 for padding). Throws upg::Error for a codebook index past the codebook.
float mdcsr_value(const CompressedMatrix& m, size_t k);
// Calls f(column, k) for every stored entry of row r, padding and filler included, in
// storage order (ascending columns within a row, N:M group by group). k indexes the
// entry: for MdCSR the matrix's entry arrays (values, prime_indices); for N:M and dense
// the row's values (its k-th int8 value or int4 code). The one walk over a row's storage
// that the decoders and the compressed-tensors writer share. Throws upg::Error for a row
// outside the matrix or an MdCSR column past cols.
[[noreturn]] void throw_bad_entry(const CompressedMatrix& m, int64_t r, int64_t col);
template <typename F>
void for_each_stored(const CompressedMatrix& m, int64_t r, F&& f) {
  if (r < 0 || r >= m.rows) throw_bad_entry(m, r, -1);
  if (m.layout == Layout::Dense) {
    for (int64_t k = 0; k < m.cols; ++k) f(k, k);
  } else if (m.layout == Layout::MdCsr) {
    int64_t col = 0;
    for (size_t k = m.mdcsr.row_pointers[size_t(r)]; k < m.mdcsr.row_pointers[size_t(r) + 1]; ++k) {
      col += m.mdcsr.delta_indices[k];
      if (col >= m.cols) throw_bad_entry(m, r, col);
      f(col, int64_t(k));
    }
  } else {
    const int n = m.nm.n, mm = m.nm.m, bits = nm_bits(mm);
    const int64_t per_v = nm_values_per_row(m.cols, n, mm);
    const uint8_t* pos = m.nm.positions.data() + r * nm_position_bytes_per_row(m.cols, n, mm);
    for (int64_t k = 0; k < per_v; ++k) f((k / n) * mm + nm_position(pos, k, bits), k);
  }
}

// Decodes row r into dense[cols] (fp32, scale applied). The plain reference every fast
// kernel is tested against.
void decode_row(const CompressedMatrix& m, int64_t r, float* dense);
// Rows [r0, r0 + n) as a matrix of their own (Phi-3's fused qkv_proj / gate_up_proj are
// bound as row ranges). MdCSR row pointers keep their absolute offsets.
CompressedMatrix slice_rows(const CompressedMatrix& m, int64_t r0, int64_t n);
// Whole matrix to dense [rows, cols].
std::vector<float> decode_dense(const CompressedMatrix& m);

// Reference kernel: y[t, r] = sum_c W[r, c] x[t, c] (+ bias[r]); plain loops, obviously
// correct, single-threaded.
void reference_matmul(const CompressedMatrix& m, const float* x, int64_t n_tokens, float* y,
                      const float* bias = nullptr);

// ---- Building (the compressor) ----

// One row's kept weights: ascending columns, quantized codes (int8 value, or prime /
// codebook index with the sign in bit 15 for Prime) and the row's scale.
struct SparseRow {
  std::vector<uint32_t> cols;
  std::vector<int32_t> codes;
  float scale = 0;
};

// Grouped values (codes 0 .. 2^bits - 1 in SparseRow::codes): one row's groups of group_size dense columns,
// an fp16 scale each, and a zero point each when the matrix has them.
struct Int4Groups {
  std::vector<uint16_t> scales;
  std::vector<uint8_t> zeros;
};

// Owns the arrays of a CompressedMatrix; view() points into them.
struct CompressedData {
  Layout layout = Layout::MdCsr;
  Encoding encoding = Encoding::Int8;
  int64_t rows = 0, cols = 0;
  int n = 0, m = 0;
  std::vector<float> scales;
  std::vector<uint32_t> row_pointers;
  std::vector<uint8_t> delta_indices;
  std::vector<int8_t> values;
  std::vector<uint16_t> prime_indices;
  std::vector<float> codebook;
  std::vector<uint8_t> positions;
  int group_size = 0;  // grouped encodings
  std::vector<uint8_t> q4;  // the codes of any grouped encoding
  std::vector<uint16_t> group_scales;
  std::vector<uint8_t> group_zeros;
  CompressedMatrix view() const;
};

// Encodes rows as MdCSR (padding gaps over 255). For Codebook, `codebook` is the table
// the codes index; for Prime codes are sign|index as stored.
CompressedData encode_mdcsr(int64_t cols, const std::vector<SparseRow>& rows, Encoding enc,
                            std::vector<float> codebook = {});
// Encodes rows as N:M; throws upg::Error if a group holds more than N kept columns.
// Only Encoding::Int8 is defined for N:M.
CompressedData encode_nm(int64_t cols, const std::vector<SparseRow>& rows, int n, int m);
// int4 values (docs/FORMAT.md 4.3): each row's codes (0..15) with its groups[r]; zero
// points are stored when the rows have them (all or none). N:M as encode_nm; dense: every
// row keeps all its columns, codes in column order.
CompressedData encode_nm_int4(int64_t cols, const std::vector<SparseRow>& rows, const std::vector<Int4Groups>& groups,
                              int n, int m, int group_size);
CompressedData encode_dense_int4(int64_t cols, const std::vector<SparseRow>& rows,
                                 const std::vector<Int4Groups>& groups, int group_size);
// Dense int4, int3 or int2 (`enc`, a grouped encoding) alike.
CompressedData encode_dense_grouped(Encoding enc, int64_t cols, const std::vector<SparseRow>& rows,
                                    const std::vector<Int4Groups>& groups, int group_size);

// Tensor parallelism's shards (docs/FORMAT.md, section 8): rows [r0, r0 + rows) and
// columns [c0, c0 + cols) as a matrix of its own, then `zero_rows` rows of weight 0 (the
// row an embedding shard gives a token it does not hold). The stored codes are copied;
// only the index structure is rebuilt (MdCSR's gaps and padding, N:M's positions, int4's
// packing and groups). Columns start and end on column_alignment(m) (or end at cols).
// Throws upg::Error naming `what` for a range outside the matrix or off the alignment.
CompressedData copy_region(const CompressedMatrix& m, int64_t r0, int64_t rows, int64_t c0, int64_t cols,
                           int64_t zero_rows, const std::string& what);
// What a column range of m must be a multiple of: 1 (MdCSR), M (N:M int8), the group
// size (dense int4, int3, int2), their least common multiple (N:M int4).
int64_t column_alignment(const CompressedMatrix& m);

}  // namespace upg::format
