#pragma once
// Tensor views over memory owned elsewhere (an mmap or a load-time buffer), and the
// store that keeps those owners alive. io/ fills a WeightStore; model/ only reads it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace upg {

enum class DType : uint8_t {
  F32, F16, BF16, F64,
  I8, U8, I16, U16, I32, U32, I64, U64, BOOL,
  // GGUF block-quantized types (ggml's block layouts).
  Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, Q5_0, Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS,
};

const char* dtype_name(DType t);
// Elements per block (1 for plain types) and bytes per block.
int64_t dtype_block_elems(DType t);
int64_t dtype_block_bytes(DType t);
bool dtype_is_quantized(DType t);
// Bytes for `n` elements; throws upg::Error when n is not a whole number of blocks or
// the size overflows.
size_t dtype_bytes(DType t, int64_t n);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major, outermost first (PyTorch order, not GGUF's)
  const std::byte* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  // A 2-D weight [rows, cols]; for 1-D tensors rows() == 1.
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return shape.empty() ? 1 : numel() / cols(); }
  template <class T>
  const T* as() const { return reinterpret_cast<const T*>(data); }
};

// Keeps mmaps and load-time buffers alive for as long as any view into them is used.
class WeightStore {
 public:
  std::string source;  // file or directory the tensors came from, for error messages

  const TensorView* find(std::string_view name) const;
  // Throws upg::Error("<source>: missing tensor '<name>'") when absent.
  const TensorView& get(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const std::map<std::string, TensorView, std::less<>>& all() const { return tensors_; }

  // Adds (or replaces) a view; the caller keeps its memory alive through keep_alive().
  void add(TensorView v);
  // Drops a view (no-op when absent); its memory stays alive with the store's owners.
  // Used when a tensor is replaced by another form (tests swap dense for compressed).
  void remove(std::string_view name);
  void keep_alive(std::shared_ptr<const void> owner) { owners_.push_back(std::move(owner)); }
  // Keeps `owner` alive, and lets release() give back pages of [data, data + size) by
  // calling drop(p, n) with a part of it: for a file mapping, which a later read maps
  // again from the file, so releasing never changes what a view reads.
  using DropPages = std::function<void(const std::byte* p, size_t n)>;
  void keep_alive(std::shared_ptr<const void> owner, const std::byte* data, size_t size, DropPages drop);
  // Nothing reads [p, p + n) for now (its bytes were copied into another form, such as a
  // backend's repack): the pages of it that lie in a range kept with a DropPages go back
  // to the system. Other memory (allocate()'s buffers) stays as it is. Callable from
  // several threads at once.
  void release(const void* p, size_t n) const;
  // Allocates an owned, 64-byte aligned buffer that lives as long as the store.
  std::byte* allocate(size_t nbytes);
  size_t total_bytes() const;

 private:
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::vector<std::shared_ptr<const void>> owners_;
  struct Droppable {
    const std::byte* data;
    size_t size;
    DropPages drop;
  };
  std::vector<Droppable> droppable_;
};

// Scalar conversions shared by readers and kernels.
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t fp32_to_bf16(float f);  // round to nearest even

// Converts `n` elements of a plain (non-quantized) float type to fp32.
void convert_to_f32(DType t, const std::byte* src, float* dst, int64_t n);

}  // namespace upg
