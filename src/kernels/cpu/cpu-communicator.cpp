// Tensor parallelism's collectives between threads of one process: the CPU ranks of a
// model (upg/kernels/cpu.h) and the tests of the forward pass's split. Hand-written: no
// library collective runs on plain host threads without a transport (MPI, gloo) that
// would be a new dependency for tests; it is not a transport for GPUs (NCCL is,
// kernels/cuda/nccl-communicator.cpp). Every rank publishes its buffers, waits at a
// barrier, and reads the others' directly; each wait is bounded, so a rank that failed
// or stalls ends every rank's call with an error instead of a hang.
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/kernels/communicator.h"
#include "upg/kernels/cpu.h"

namespace upg {
namespace {

struct Shared {
  explicit Shared(int n, int64_t timeout_ms) : n(n), timeout(timeout_ms), send(size_t(n)), dst(nullptr) {}
  const int n;
  const std::chrono::milliseconds timeout;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  int64_t generation = 0;
  bool aborted = false;
  std::vector<const float*> send;  // each rank's published buffer
  float* dst;                      // rank 0's gather target
};

class CpuCommunicator final : public Communicator {
 public:
  CpuCommunicator(std::shared_ptr<Shared> s, int rank) : s_(std::move(s)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return s_->n; }

  void all_reduce_sum(const float* send, float* recv, int64_t n) override {
    publish(send);
    // Every rank sums in rank order, so all get the same bits.
    sum_.assign(size_t(n), 0.0f);
    for (int r = 0; r < s_->n; ++r) {
      const float* x = s_->send[size_t(r)];
      for (int64_t i = 0; i < n; ++i) sum_[size_t(i)] += x[i];
    }
    barrier("all-reduce");  // nobody writes a buffer another rank still reads
    std::memcpy(recv, sum_.data(), size_t(n) * sizeof(float));
  }

  void gather_columns(const float* src, int64_t rows, std::span<const int64_t> offsets, float* dst,
                      float*) override {
    if (rank_ == 0) s_->dst = dst;  // read by the others only after the barrier below
    publish(src);
    const int64_t c0 = offsets[size_t(rank_)], cols = offsets[size_t(rank_) + 1] - c0, total = offsets.back();
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(s_->dst + r * total + c0, src + r * cols, size_t(cols) * sizeof(float));
    barrier("gather");
  }

  void abort() override {
    std::lock_guard lock(s_->mu);
    s_->aborted = true;
    s_->cv.notify_all();
  }

 private:
  void publish(const float* p) {
    s_->send[size_t(rank_)] = p;
    barrier("collective");
  }

  // Waits for every rank (a generation barrier), at most the timeout.
  void barrier(const char* what) {
    std::unique_lock lock(s_->mu);
    if (s_->aborted) throw Error(fmt::format("tensor parallel: rank {} stopped: another rank failed", rank_));
    const int64_t gen = s_->generation;
    if (++s_->arrived == s_->n) {
      s_->arrived = 0;
      ++s_->generation;
      s_->cv.notify_all();
      return;
    }
    const bool done = s_->cv.wait_for(lock, s_->timeout, [&] { return s_->generation != gen || s_->aborted; });
    if (s_->generation != gen) return;
    if (!done) {
      s_->aborted = true;
      s_->cv.notify_all();
      throw Error(fmt::format("tensor parallel: rank {} waited {} ms for the other ranks ({}); stopping every rank",
                              rank_, s_->timeout.count(), what));
    }
    throw Error(fmt::format("tensor parallel: rank {} stopped: another rank failed", rank_));
  }

  std::shared_ptr<Shared> s_;
  int rank_;
  std::vector<float> sum_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_cpu_communicators(int n, int64_t timeout_ms) {
  if (n < 1) throw ParamError("tensor_parallel", fmt::format("must be at least 1, got {}", n));
  auto shared = std::make_shared<Shared>(n, timeout_ms);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_unique<CpuCommunicator>(shared, r));
  return out;
}

}  // namespace upg
