#pragma once
// The project's one threading mechanism: a fixed pool the forward pass, the load-time
// conversions and the compressor all split their work on.
#include <cstdint>
#include <memory>
#include <type_traits>

namespace upg {

// What a parallel region runs, fn(begin, end, thread_index): a non-owning reference to
// the caller's callable. std::function would copy a lambda that captures more than two
// pointers to the heap, an allocation per region in the decode loop; this never
// allocates. The callable must outlive the call (a lambda argument does).
class ChunkFn {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, ChunkFn>>>
  ChunkFn(F&& f)  // NOLINT: implicit, so parallel_for takes lambdas as they are
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, int64_t b, int64_t e, int t) { (*static_cast<std::remove_reference_t<F>*>(o))(b, e, t); }) {}
  void operator()(int64_t begin, int64_t end, int thread) const { call_(obj_, begin, end, thread); }

 private:
  void* obj_;
  void (*call_)(void*, int64_t, int64_t, int);
};

// A fixed pool of worker threads that spin briefly before sleeping, so the ~150
// parallel regions of one decode step do not each pay a futex wake-up.
class ThreadPool {
 public:
  // Past this a pool only oversubscribes the machine (and 100k threads exhaust its
  // process ids); llama.cpp caps its pools at the same figure.
  static constexpr int kMaxThreads = 512;
  // n_threads 0: hardware concurrency. Throws upg::Error for a negative count, one past
  // kMaxThreads, or when the system cannot start the threads (after stopping those it did).
  explicit ThreadPool(int n_threads);
  // What n_threads 0 means: the hardware's concurrency, at least 1.
  static int hardware_threads();
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int size() const;
  // Splits [0, n) into contiguous chunks, one per thread (the caller runs one), and
  // returns when all are done. fn(begin, end, thread_index).
  void parallel_for(int64_t n, ChunkFn fn);

 private:
  void stop_workers();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upg
