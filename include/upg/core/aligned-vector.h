#pragma once
// std::vector whose data starts on a 64-byte boundary: a kernel's 64-byte loads from it
// then never straddle two cache lines (malloc only promises 16 bytes, and a split load
// costs two line reads where the stream needs one).
#include <cstddef>
#include <new>
#include <vector>

namespace upg {

template <class T>
struct Aligned64Allocator {
  using value_type = T;
  Aligned64Allocator() = default;
  template <class U>
  Aligned64Allocator(const Aligned64Allocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const Aligned64Allocator<U>&) const {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, Aligned64Allocator<T>>;

}  // namespace upg
