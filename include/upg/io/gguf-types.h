#pragma once
// GGUF's metadata value types and ggml's tensor type ids, shared by the reader (io) and
// by the writer's users outside io (upg synth --gguf).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "upg/core/tensor.h"

namespace upg::io {

// GGUF metadata value types (gguf_type in ggml).
enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);
bool gguf_type_is_integer(GgufType t);  // BOOL excluded

// ggml tensor type ids this engine reads.
enum GgmlType : uint32_t {
  GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8,
  GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_IQ4_NL = 20,
  GGML_IQ4_XS = 23, GGML_BF16 = 30,
};
// Name of any ggml type id ("Q4_K", "IQ2_XS", ...), or "unknown".
std::string ggml_type_name(uint32_t id);
// The DType for a supported ggml type id; nullopt otherwise.
std::optional<DType> ggml_to_dtype(uint32_t id);
// The ggml type id for a DType (throws upg::Error for types GGUF cannot hold).
uint32_t dtype_to_ggml(DType t);

struct GgufArray;

// One metadata value. Integers keep their raw bits (sign-extended for signed types);
// arrays are held behind a shared_ptr so values stay cheap to copy.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  uint64_t bits = 0;  // integer types and BOOL
  double number = 0;  // FLOAT32 / FLOAT64
  std::string str;    // STRING
  std::shared_ptr<const GgufArray> array;  // ARRAY
};

struct GgufArray {
  GgufType elem_type = GgufType::UINT8;
  // Exactly one of these is filled, chosen by elem_type.
  std::vector<uint64_t> ints;  // integer types and BOOL, raw bits as in GgufValue
  std::vector<double> numbers;
  std::vector<std::string> strings;
  std::vector<GgufArray> arrays;
  size_t size() const;
};

}  // namespace upg::io
