#pragma once
// The threads of a tensor-parallel model, one per rank: each call runs one job on every
// rank at once and returns when all have finished. A rank that throws, or a call that
// outlasts the timeout, aborts the communicators (the abort callback) so that no rank
// waits for it in a collective; the call then throws one upg::Error naming the first
// failure, and the group refuses every later job (a collective was cut short: the ranks'
// states no longer agree).
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace upg {

class RankGroup {
 public:
  RankGroup(int n, std::chrono::milliseconds timeout);
  ~RankGroup();
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;
  int size() const { return int(threads_.size()); }
  // Called, from whichever thread sees the failure first, when a rank fails or a call
  // times out: ends the other ranks' collectives (Communicator::abort).
  void set_abort(std::function<void()> abort);
  // job(rank) on every rank's thread; throws upg::Error as described above.
  void run(const std::function<void(int rank)>& job);
  bool failed() const;
  // Whether a rank is still inside a job (after a failure: one that ignored the abort).
  bool busy() const;

 private:
  struct State;
  std::shared_ptr<State> s_;
  std::vector<std::thread> threads_;
};

}  // namespace upg
