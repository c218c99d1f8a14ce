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

enum class Layout : uint8_t { MdCsr, NM };
enum class Encoding : uint8_t { Int8, Prime, Codebook };

const char* layout_name(Layout l);      // "mdcsr", "nm"
const char* encoding_name(Encoding e);  // "int8", "prime", "codebook"
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

struct CompressedMatrix {
  Layout layout = Layout::MdCsr;
  Encoding encoding = Encoding::Int8;
  int64_t rows = 0, cols = 0;
  std::span<const float> scales;  // [rows]: weight = scales[r] * decoded value
  MdCsrView mdcsr;
  NMView nm;

  int64_t entries() const;  // stored entries (MdCSR incl. padding; N:M rows*cols*N/M)
  size_t bytes() const;     // total bytes of every part
};

// Checks every rule of the spec (row pointers start at 0, never decrease, end at the
// entry count; columns stay below cols; prime index <= 10000; codebook index < K and
// codebook[0] == 0; positions inside their group and no two values on one position;
// part sizes agree with the shape). Throws upg::Error naming `what` (the tensor).
void validate(const CompressedMatrix& m, const std::string& what);

// The unscaled weight of MdCSR entry k: the int8 value, the signed prime, or the codebook
// entry (0 for padding). Throws upg::Error for a codebook index past the codebook.
float mdcsr_value(const CompressedMatrix& m, size_t k);
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
  CompressedMatrix view() const;
};

// Encodes rows as MdCSR (padding gaps over 255). For Codebook, `codebook` is the table
// the codes index; for Prime codes are sign|index as stored.
CompressedData encode_mdcsr(int64_t cols, const std::vector<SparseRow>& rows, Encoding enc,
                            std::vector<float> codebook = {});
// Encodes rows as N:M; throws upg::Error if a group holds more than N kept columns.
// Only Encoding::Int8 is defined for N:M.
CompressedData encode_nm(int64_t cols, const std::vector<SparseRow>& rows, int n, int m);

}  // namespace upg::format
