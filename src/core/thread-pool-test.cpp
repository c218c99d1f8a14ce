#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "upg/core/error.h"
#include "upg/core/thread-pool.h"

namespace upg {
namespace {

// Every index in [0, n) is visited exactly once, by contiguous non-empty chunks, with
// distinct in-range thread indices.
void check_cover(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::vector<std::atomic<int>> by_thread(static_cast<size_t>(pool.size()));
  pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
    ASSERT_LT(b, e);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, pool.size());
    by_thread[t].fetch_add(1);
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i << " of " << n;
  for (auto& c : by_thread) ASSERT_LE(c.load(), 1);
}

TEST(ThreadPool, SizeDefaultsToHardwareConcurrency) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.size(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  ThreadPool three(3);
  EXPECT_EQ(three.size(), 3);
}

TEST(ThreadPool, RejectsBadCounts) {
  EXPECT_THROW(ThreadPool(-1), Error);
  try {
    ThreadPool pool(100000);  // started 32k threads before failing, and aborted
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "n_threads: 100000 exceeds the maximum of 512");
  }
}

#if !defined(__SANITIZE_ADDRESS__)
// A pool whose threads cannot all start stops those that did and throws; before, the
// half-built pool unwound with running threads and the process called std::terminate.
// Run in a child whose address space is capped, so thread stacks run out after a few.
// (Not under ASan: its shadow memory needs a far larger address space than the cap.)
TEST(ThreadPool, FailedStartCleansUp) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // What the process maps now plus 128 MiB: threads get 8 MiB stacks, so a dozen or so fit.
    unsigned long pages = 0;
    if (FILE* f = fopen("/proc/self/statm", "r")) {
      if (fscanf(f, "%lu", &pages) != 1) pages = 0;
      fclose(f);
    }
    struct rlimit lim {};
    getrlimit(RLIMIT_AS, &lim);
    lim.rlim_cur = pages * uint64_t(sysconf(_SC_PAGESIZE)) + (128ull << 20);
    if (pages == 0 || setrlimit(RLIMIT_AS, &lim) != 0) _exit(6);
    try {
      ThreadPool pool(ThreadPool::kMaxThreads);
    } catch (const Error& e) {
      _exit(std::string(e.what()).find("could not start thread") != std::string::npos ? 0 : 3);
    } catch (...) {
      _exit(4);
    }
    _exit(5);  // every thread started: the cap did not bite
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
#endif

TEST(ThreadPool, CoversRangeForManySizes) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 4, 5, 7, 64, 1000, 1001}) check_cover(pool, n);
  }
}

TEST(ThreadPool, ZeroAndNegativeNDoNothing) {
  ThreadPool pool(2);
  int calls = 0;
  pool.parallel_for(0, [&](int64_t, int64_t, int) { ++calls; });
  pool.parallel_for(-5, [&](int64_t, int64_t, int) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, ManySequentialCallsSumCorrectly) {
  ThreadPool pool(2);
  std::vector<int64_t> partial(2);
  int64_t total = 0;
  constexpr int64_t n = 997;
  for (int iter = 0; iter < 20000; ++iter) {
    partial.assign(2, 0);
    pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
      for (int64_t i = b; i < e; ++i) partial[t] += i + iter;
    });
    total += partial[0] + partial[1];
  }
  int64_t expect = 0;
  for (int iter = 0; iter < 20000; ++iter) expect += n * (n - 1) / 2 + n * iter;
  EXPECT_EQ(total, expect);
}

TEST(ThreadPool, WakesAfterWorkersSleep) {
  ThreadPool pool(2);
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // well past the spin phase
    check_cover(pool, 100);
  }
}

TEST(ThreadPool, PoolOfOneRunsInline) {
  ThreadPool pool(1);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.parallel_for(10, [&](int64_t b, int64_t e, int t) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 10);
    EXPECT_EQ(t, 0);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, ExceptionsPropagateAndPoolStaysUsable) {
  ThreadPool pool(3);
  for (int thrower : {0, 1, 2}) {
    EXPECT_THROW(pool.parallel_for(30,
                                   [&](int64_t, int64_t, int t) {
                                     if (t == thrower) throw std::runtime_error("boom");
                                   }),
                 std::runtime_error);
    check_cover(pool, 30);
  }
  // Every chunk throwing still yields one exception and no deadlock.
  EXPECT_THROW(pool.parallel_for(30, [](int64_t, int64_t, int) { throw std::logic_error("all"); }),
               std::logic_error);
  check_cover(pool, 30);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(4, [&](int64_t b, int64_t e, int outer) {
    for (int64_t i = b; i < e; ++i)
      pool.parallel_for(10, [&](int64_t b2, int64_t e2, int inner) {
        EXPECT_EQ(inner, outer);
        for (int64_t j = b2; j < e2; ++j) sum += j;
      });
  });
  EXPECT_EQ(sum.load(), 4 * 45);
}

TEST(ThreadPool, ConcurrentCallersAreSerialised) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  auto caller = [&] {
    for (int i = 0; i < 2000; ++i)
      pool.parallel_for(8, [&](int64_t b, int64_t e, int) { sum += e - b; });
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(sum.load(), 2 * 2000 * 8);
}

}  // namespace
}  // namespace upg
