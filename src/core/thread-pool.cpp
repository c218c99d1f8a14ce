#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/thread-pool.h"

namespace upg {

namespace {

using Clock = std::chrono::steady_clock;

// A decode step runs ~150 parallel regions a few tens of microseconds apart, so a worker
// that spins this long almost never sleeps during generation, yet an idle process stops
// burning CPU within a fraction of a millisecond.
constexpr auto kSpinPause = std::chrono::microseconds(30);
constexpr auto kSpinYield = std::chrono::microseconds(100);

// Spins on `done()` with pause, then yield, then (if `sleep` is given) blocks in it.
// Clock reads are amortised over 64 polls because a pause costs only tens of cycles.
template <class Done, class Sleep>
void spin_wait(Done done, Sleep sleep, bool can_sleep) {
  const auto start = Clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return;
      _mm_pause();
    }
    const auto waited = Clock::now() - start;
    if (waited < kSpinPause) continue;
    if (waited < kSpinYield || !can_sleep) {
      std::this_thread::yield();
      continue;
    }
    sleep();
    if (done()) return;
  }
}

// Which pool (and which slot in it) the current thread is running a chunk for, so a
// nested parallel_for from inside fn runs inline instead of waiting on itself.
thread_local const void* tl_pool = nullptr;
thread_local int tl_index = 0;

}  // namespace

struct ThreadPool::Impl {
  int n_threads = 1;
  std::vector<std::thread> workers;

  // Job description; written by the caller before `generation` is bumped (release) and
  // read by workers after they observe the bump (acquire).
  const ChunkFn* fn = nullptr;
  int64_t n = 0;
  bool stop = false;

  std::atomic<uint32_t> generation{0};  // also the futex word workers sleep on
  std::atomic<int> sleepers{0};
  std::atomic<int> pending{0};  // workers still running the current job

  std::atomic<bool> failed{false};
  std::exception_ptr error;  // first exception; published by the `pending` release

  std::mutex call_mutex;  // serialises parallel_for calls from different threads

  void run_chunk(int index) {
    const int64_t begin = n * index / n_threads;
    const int64_t end = n * (index + 1) / n_threads;
    if (begin >= end) return;
    const void* outer_pool = tl_pool;
    const int outer_index = tl_index;
    tl_pool = this;
    tl_index = index;
    try {
      (*fn)(begin, end, index);
    } catch (...) {
      bool expected = false;
      if (failed.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) error = std::current_exception();
    }
    tl_pool = outer_pool;
    tl_index = outer_index;
  }

  void worker_loop(int index) {
    uint32_t seen = 0;
    for (;;) {
      uint32_t now = 0;
      spin_wait(
          [&] { return (now = generation.load(std::memory_order_acquire)) != seen; },
          [&] {
            // seq_cst pairs with the caller's seq_cst bump-then-check of `sleepers`:
            // either the caller sees this sleeper or this thread sees the new generation.
            sleepers.fetch_add(1, std::memory_order_seq_cst);
            if (generation.load(std::memory_order_seq_cst) == seen) generation.wait(seen, std::memory_order_acquire);
            sleepers.fetch_sub(1, std::memory_order_seq_cst);
          },
          true);
      seen = now;
      if (stop) return;
      run_chunk(index);
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void publish() {
    generation.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) generation.notify_all();
  }
};

int ThreadPool::hardware_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

ThreadPool::ThreadPool(int n_threads) : impl_(std::make_unique<Impl>()) {
  if (n_threads < 0) throw ParamError("n_threads", fmt::format("must be 0 (every core) or more, got {}", n_threads));
  if (n_threads > kMaxThreads)
    throw ParamError("n_threads", fmt::format("{} exceeds the maximum of {}", n_threads, kMaxThreads));
  if (n_threads == 0) n_threads = hardware_threads();
  impl_->n_threads = n_threads;
  impl_->workers.reserve(n_threads - 1);
  try {
    for (int i = 1; i < n_threads; ++i) impl_->workers.emplace_back([this, i] { impl_->worker_loop(i); });
  } catch (const std::system_error& e) {
    // The workers already running would terminate the process when their std::thread
    // objects are destroyed unjoined: stop them before reporting.
    const size_t started = impl_->workers.size();
    stop_workers();
    throw Error(fmt::format("n_threads {}: could not start thread {}: {}", n_threads, started + 1, e.what()));
  }
}

void ThreadPool::stop_workers() {
  impl_->stop = true;
  impl_->publish();
  for (auto& t : impl_->workers) t.join();
  impl_->workers.clear();
}

ThreadPool::~ThreadPool() { stop_workers(); }

int ThreadPool::size() const { return impl_->n_threads; }

void ThreadPool::parallel_for(int64_t n, ChunkFn fn) {
  if (n <= 0) return;
  Impl& im = *impl_;
  // A pool of one, a single item, or a call from inside one of this pool's chunks runs
  // inline on the calling thread (with that thread's index, so per-thread scratch
  // indexed by it stays private).
  if (im.n_threads == 1 || n == 1 || tl_pool == &im) {
    fn(0, n, tl_pool == &im ? tl_index : 0);
    return;
  }
  std::lock_guard<std::mutex> lock(im.call_mutex);
  im.fn = &fn;
  im.n = n;
  im.failed.store(false, std::memory_order_relaxed);
  im.error = nullptr;
  im.pending.store(im.n_threads - 1, std::memory_order_relaxed);
  im.publish();
  im.run_chunk(0);
  // The caller only spins and yields: the workers' chunks are the same size as its own,
  // so they finish within microseconds unless descheduled, and yield covers that case.
  spin_wait([&] { return im.pending.load(std::memory_order_acquire) == 0; }, [] {}, false);
  if (im.failed.load(std::memory_order_acquire)) {
    std::exception_ptr e = im.error;
    im.error = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace upg
