#include "upg/core/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

namespace {
struct DTypeInfo {
  const char* name;
  int64_t block_elems;
  int64_t block_bytes;
};
// Block sizes follow ggml (QK4_0 = QK8_0 = 32, QK_K = 256).
constexpr DTypeInfo kInfo[] = {
    {"F32", 1, 4},       {"F16", 1, 2},       {"BF16", 1, 2},      {"F64", 1, 8},    {"I8", 1, 1},
    {"U8", 1, 1},        {"I16", 1, 2},       {"U16", 1, 2},       {"I32", 1, 4},    {"U32", 1, 4},
    {"I64", 1, 8},       {"U64", 1, 8},       {"BOOL", 1, 1},      {"Q4_0", 32, 18}, {"Q4_1", 32, 20},
    {"Q8_0", 32, 34},    {"Q4_K", 256, 144},  {"Q5_K", 256, 176},  {"Q6_K", 256, 210}, {"Q5_0", 32, 22},
    {"Q5_1", 32, 24},    {"Q2_K", 256, 84},   {"Q3_K", 256, 110},  {"IQ4_NL", 32, 18}, {"IQ4_XS", 256, 136},
};
const DTypeInfo& info(DType t) { return kInfo[static_cast<int>(t)]; }
}  // namespace

const char* dtype_name(DType t) { return info(t).name; }
int64_t dtype_block_elems(DType t) { return info(t).block_elems; }
int64_t dtype_block_bytes(DType t) { return info(t).block_bytes; }
bool dtype_is_quantized(DType t) { return info(t).block_elems > 1; }

size_t dtype_bytes(DType t, int64_t n) {
  const auto& i = info(t);
  if (n < 0) throw Error(fmt::format("negative element count {}", n));
  if (n % i.block_elems != 0)
    throw Error(fmt::format("{} elements is not a multiple of the {} block size {}", n, i.name, i.block_elems));
  uint64_t blocks = uint64_t(n / i.block_elems);
  if (blocks > std::numeric_limits<uint64_t>::max() / uint64_t(i.block_bytes))
    throw Error(fmt::format("{} x {} bytes overflows", blocks, i.block_bytes));
  return size_t(blocks * uint64_t(i.block_bytes));
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const TensorView* WeightStore::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& WeightStore::get(std::string_view name) const {
  if (auto* t = find(name)) return *t;
  throw Error(fmt::format("{}: missing tensor '{}'", source, name));
}

void WeightStore::add(TensorView v) {
  std::string key = v.name;
  tensors_.insert_or_assign(std::move(key), std::move(v));
}

void WeightStore::remove(std::string_view name) {
  if (auto it = tensors_.find(name); it != tensors_.end()) tensors_.erase(it);
}

void WeightStore::keep_alive(std::shared_ptr<const void> owner, const std::byte* data, size_t size, DropPages drop) {
  owners_.push_back(std::move(owner));
  droppable_.push_back({data, size, std::move(drop)});
}

void WeightStore::release(const void* p, size_t n) const {
  const auto* b = static_cast<const std::byte*>(p);
  for (const Droppable& d : droppable_)
    if (b >= d.data && b < d.data + d.size) return d.drop(b, std::min(n, size_t(d.data + d.size - b)));
}

std::byte* WeightStore::allocate(size_t nbytes) {
  size_t rounded = (nbytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw Error(fmt::format("{}: out of memory allocating {} bytes", source, nbytes));
  owners_.push_back(std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); }));
  return static_cast<std::byte*>(p);
}

size_t WeightStore::total_bytes() const {
  size_t n = 0;
  for (auto& [_, t] : tensors_) n += t.nbytes;
  return n;
}

float fp16_to_fp32(uint16_t h) {
  // Exact conversion including subnormals, infinities and NaN.
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {
      int e = -1;
      do {
        mant <<= 1;
        ++e;
      } while ((mant & 0x400) == 0);
      u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7F800000u | mant << 13;
  } else {
    u = sign | (exp + 112) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  // Round to nearest even; F16C would do the same, this keeps the core portable.
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7FFFFFFF;
  if (absx >= 0x7F800000) return uint16_t(sign | 0x7C00 | (absx > 0x7F800000 ? 0x200 : 0));
  if (absx >= 0x477FF000) return uint16_t(sign | 0x7C00);  // overflow to inf
  if (absx < 0x38800000) {                                   // subnormal or zero
    if (absx < 0x33000000) return uint16_t(sign);
    uint32_t e = absx >> 23;
    uint32_t m = (absx & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = absx - 0x38000000;  // rebias exponent 127 -> 15
  uint32_t mant = r >> 13;
  uint32_t rem = r & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (mant & 1))) ++mant;
  return uint16_t(sign | mant);
}

uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

void convert_to_f32(DType t, const std::byte* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = fp16_to_fp32(h);
      }
      return;
    }
    case DType::BF16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_fp32(h);
      }
      return;
    }
    default:
      throw Error(fmt::format("cannot convert {} to F32 directly", dtype_name(t)));
  }
}

}  // namespace upg
