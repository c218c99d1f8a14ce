// The in-process communicator of CPU ranks: sums and gathers across threads, the same
// bits on every rank, and bounded waits (an aborted or absent rank ends the others' calls).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "upg/core/error.h"
#include "upg/kernels/communicator.h"
#include "upg/kernels/cpu.h"

namespace upg {
namespace {

template <class F>
void on_ranks(int n, F&& f) {
  std::vector<std::thread> ts;
  for (int r = 0; r < n; ++r) ts.emplace_back([&, r] { f(r); });
  for (auto& t : ts) t.join();
}

TEST(CpuCommunicator, AllReduceSumsInRankOrderOnEveryRank) {
  for (int n : {1, 2, 3, 4}) {
    auto comms = make_cpu_communicators(n, 5000);
    std::vector<std::vector<float>> bufs(static_cast<size_t>(n));
    on_ranks(n, [&](int r) {
      std::vector<float>& b = bufs[size_t(r)];
      for (int step = 0; step < 20; ++step) {  // repeated calls reuse the barrier
        b.assign(37, 0.0f);
        for (size_t i = 0; i < b.size(); ++i) b[i] = 0.1f * float(r + 1) + float(i) + float(step);
        comms[size_t(r)]->all_reduce_sum(b.data(), b.data(), int64_t(b.size()));
      }
    });
    for (size_t i = 0; i < 37; ++i) {
      float want = 0;
      for (int r = 0; r < n; ++r) want += 0.1f * float(r + 1) + float(i) + 19.0f;
      for (int r = 0; r < n; ++r) ASSERT_EQ(bufs[size_t(r)][i], want) << "rank " << r << " element " << i;
    }
  }
}

TEST(CpuCommunicator, GatherColumnsPlacesEachRanksSlice) {
  const int n = 3;
  const std::vector<int64_t> offsets = {0, 5, 7, 12};  // uneven slices
  const int64_t rows = 4;
  auto comms = make_cpu_communicators(n, 5000);
  std::vector<float> dst(size_t(rows * offsets.back()), -1.0f);
  on_ranks(n, [&](int r) {
    const int64_t cols = offsets[size_t(r) + 1] - offsets[size_t(r)];
    std::vector<float> src(size_t(rows * cols));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < cols; ++c) src[size_t(i * cols + c)] = float(i * 100 + offsets[size_t(r)] + c);
    comms[size_t(r)]->gather_columns(src.data(), rows, offsets, r == 0 ? dst.data() : nullptr, nullptr);
  });
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < offsets.back(); ++c) ASSERT_EQ(dst[size_t(i * offsets.back() + c)], float(i * 100 + c));
}

TEST(CpuCommunicator, AbortEndsAWaitingRank) {
  auto comms = make_cpu_communicators(2, 60000);
  std::vector<float> x(4, 1.0f);
  const auto start = std::chrono::steady_clock::now();
  std::thread waiter([&] { EXPECT_THROW(comms[0]->all_reduce_sum(x.data(), x.data(), 4), Error); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  comms[1]->abort();  // rank 1 failed instead of joining
  waiter.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_THROW(comms[1]->all_reduce_sum(x.data(), x.data(), 4), Error);  // aborted for good
}

TEST(CpuCommunicator, AnAbsentRankTimesOut) {
  auto comms = make_cpu_communicators(2, 100);
  std::vector<float> x(4, 1.0f);
  try {
    comms[0]->all_reduce_sum(x.data(), x.data(), 4);
    FAIL() << "returned without rank 1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("waited 100 ms"), std::string::npos) << e.what();
  }
  EXPECT_THROW(comms[1]->all_reduce_sum(x.data(), x.data(), 4), Error);  // the others stop too
}

}  // namespace
}  // namespace upg
