// A decode step allocates nothing once the model is warm: its buffers are sized up front
// (forward.h), and the thread pool's regions take the caller's lambdas by reference
// (kernels::ChunkFn), not by a std::function that would copy a large capture to the heap.
// Counting replaced global operator new is the only way to check that from outside.
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "core/test-paths.h"
#include "upg/model.h"

namespace {
std::atomic<long> g_allocs{0};
}  // namespace

// Every unaligned form, so that whatever the library pairs (std::stable_sort's buffer is
// a nothrow new freed by a plain delete) comes from malloc and goes back to free: under
// AddressSanitizer a replaced delete freeing its own allocator's block is an error.
void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace upg {
namespace {

TEST(DecodeAlloc, NoAllocationPerDecodeStep) {
  ModelOptions o;
  o.n_threads = 2;
  o.context_length = 64;
  auto model = Model::from_file(test::source_dir() + "/tests/fixtures/tiny/llama", o);
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(3 + i, i, 0, i == 4);
  model->decode(b);
  auto step = [&](int pos) {
    b.clear();
    b.add(7, pos, 0, true);
    model->decode(b);
  };
  step(5);  // the first single-token step may size what a prompt did not
  const long before = g_allocs.load();
  for (int pos = 6; pos < 30; ++pos) {
    const long a = g_allocs.load();
    step(pos);
    if (g_allocs.load() != a) ADD_FAILURE() << "step at position " << pos << ": " << g_allocs.load() - a;
  }
  EXPECT_EQ(g_allocs.load() - before, 0);
}

}  // namespace
}  // namespace upg
