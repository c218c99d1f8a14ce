#pragma once
// Counts calls to global operator new, for tests that promise no allocation in a hot
// loop: replacing the global operators is the only way to see that from outside.
//
// Include in exactly ONE translation unit of a test binary: it defines the replaceable
// global operators, which may exist once per program.
//
// Every unaligned form is replaced, so that whatever the library pairs (std::stable_sort's
// buffer is a nothrow new freed by a plain delete) comes from malloc and goes back to
// free. Under AddressSanitizer a partial replacement fails: a replaced delete freeing a
// block of ASan's own new is reported as an alloc-dealloc mismatch.
#include <atomic>
#include <cstdlib>
#include <new>

namespace upg::test {

inline std::atomic<long>& allocation_counter() {
  static std::atomic<long> n{0};
  return n;
}
// Calls to operator new (any unaligned form) since the program started.
inline long allocations() { return allocation_counter().load(std::memory_order_relaxed); }

}  // namespace upg::test

void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  upg::test::allocation_counter().fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new(std::size_t n) {
  if (void* p = ::operator new(n, std::nothrow)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
