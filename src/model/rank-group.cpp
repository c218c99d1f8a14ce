#include "model/rank-group.h"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

struct RankGroup::State {
  std::mutex mu;
  std::condition_variable work, done;
  std::function<void(int)> job;
  std::function<void()> abort;
  int64_t epoch = 0;
  int pending = 0;
  bool stop = false;
  bool failed = false;
  std::string first_error;  // the failure that aborted the others (theirs follow from it)
  std::chrono::milliseconds timeout{0};

  // Under mu.
  void fail(std::string why) {
    if (!failed) {
      failed = true;
      first_error = std::move(why);
      if (abort) abort();
    }
  }
};

RankGroup::RankGroup(int n, std::chrono::milliseconds timeout) : s_(std::make_shared<State>()) {
  s_->timeout = timeout;
  for (int r = 0; r < n; ++r)
    threads_.emplace_back([s = s_, r] {
      int64_t seen = 0;
      std::unique_lock lock(s->mu);
      for (;;) {
        s->work.wait(lock, [&] { return s->stop || s->epoch != seen; });
        if (s->stop) return;
        seen = s->epoch;
        const std::function<void(int)> job = s->job;
        lock.unlock();
        std::string error;
        try {
          job(r);
        } catch (const std::exception& e) {
          error = e.what();
        } catch (...) {
          error = "an unknown exception";
        }
        lock.lock();
        if (!error.empty()) s->fail(fmt::format("tensor parallel rank {}: {}", r, error));
        if (--s->pending == 0) s->done.notify_all();
      }
    });
}

RankGroup::~RankGroup() {
  bool stuck = false;
  {
    std::lock_guard lock(s_->mu);
    s_->stop = true;
    s_->work.notify_all();
    // A rank still inside a job that ignored the abort cannot be joined without a hang:
    // it is left running on the shared state it holds.
    stuck = s_->pending > 0;
  }
  for (std::thread& t : threads_) stuck ? t.detach() : t.join();
}

void RankGroup::set_abort(std::function<void()> abort) {
  std::lock_guard lock(s_->mu);
  s_->abort = std::move(abort);
}

bool RankGroup::failed() const {
  std::lock_guard lock(s_->mu);
  return s_->failed;
}

bool RankGroup::busy() const {
  std::lock_guard lock(s_->mu);
  return s_->pending > 0;
}

void RankGroup::run(const std::function<void(int rank)>& job) {
  std::unique_lock lock(s_->mu);
  if (s_->failed)
    throw Error(fmt::format("tensor parallel: the ranks stopped after an earlier failure ({})", s_->first_error));
  if (s_->pending > 0) throw Error("tensor parallel: a rank is still inside an earlier job");
  s_->job = job;
  s_->pending = size();
  ++s_->epoch;
  s_->work.notify_all();
  if (!s_->done.wait_for(lock, s_->timeout, [&] { return s_->pending == 0; })) {
    s_->fail(fmt::format("tensor parallel: the ranks did not finish within {} ms", s_->timeout.count()));
    // The abort ends their collectives; a rank that still does not return is left.
    if (!s_->done.wait_for(lock, std::chrono::seconds(10), [&] { return s_->pending == 0; }))
      throw Error(s_->first_error + "; some ranks did not stop after the abort");
  }
  if (s_->failed) throw Error(s_->first_error);
}

}  // namespace upg
