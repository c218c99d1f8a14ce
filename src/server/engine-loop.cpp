#include "server/engine-loop.h"

#include <exception>

#include <fmt/format.h>

#include "server/api-error.h"

namespace upg::server {

bool Channel::wait(std::vector<RequestEvent>& out, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return !events_.empty() || !error_.empty(); });
  if (!error_.empty()) throw ApiError(500, "engine failed: " + error_, {}, "server_error");
  if (events_.empty()) return false;
  for (RequestEvent& e : events_) out.push_back(std::move(e));
  events_.clear();
  return true;
}

void Channel::push(std::vector<RequestEvent>& events) {
  {
    std::lock_guard lock(mu_);
    for (RequestEvent& e : events) events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void Channel::fail(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    error_ = why;
  }
  cv_.notify_all();
}

EngineLoop::EngineLoop(Engine& engine) : engine_(engine), thread_([this] { run(); }) {}

EngineLoop::~EngineLoop() { stop(); }

void EngineLoop::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<int64_t> EngineLoop::submit(std::vector<Request> requests, const std::shared_ptr<Channel>& channel) {
  std::vector<int64_t> ids;
  // Submitting and registering under one lock: the loop dispatches a step's events under
  // it too, so no event can arrive before its channel is known.
  std::lock_guard lock(mu_);
  if (!failed_.empty()) throw ApiError(500, "engine failed: " + failed_, {}, "server_error");
  try {
    for (Request& r : requests) {
      ids.push_back(engine_.submit(std::move(r)));
      channels_[ids.back()] = channel;
    }
  } catch (...) {
    for (int64_t id : ids) engine_.cancel(id);  // their finished events go to the channel, unread
    throw;
  }
  return ids;
}

void EngineLoop::cancel(const std::vector<int64_t>& ids) {
  for (int64_t id : ids) engine_.cancel(id);
}

void EngineLoop::cancel_all() {
  std::lock_guard lock(mu_);
  for (const auto& [id, ch] : channels_) engine_.cancel(id);
}

size_t EngineLoop::live() const {
  std::lock_guard lock(mu_);
  return channels_.size();
}

void EngineLoop::run() {
  while (!stop_) {
    if (!engine_.wait_for_work(std::chrono::milliseconds(100))) continue;
    std::vector<RequestEvent> events;
    try {
      events = engine_.step();
    } catch (const std::exception& e) {
      // Not a bad request (those fail at submit): the engine itself broke. Every waiting
      // client gets a 500 or an error in its stream, and later requests are refused,
      // rather than the process ending under them.
      std::lock_guard lock(mu_);
      failed_ = e.what();
      fmt::print(stderr, "upg: serve: engine step failed: {}\n", failed_);
      for (auto& [id, ch] : channels_) ch->fail(failed_);
      channels_.clear();
      return;
    }
    // Group by channel, so each reader wakes once per step.
    std::unordered_map<Channel*, std::pair<std::shared_ptr<Channel>, std::vector<RequestEvent>>> by_channel;
    {
      std::lock_guard lock(mu_);
      for (RequestEvent& e : events) {
        auto it = channels_.find(e.id);
        if (it == channels_.end()) continue;
        auto& slot = by_channel[it->second.get()];
        slot.first = it->second;
        const bool finished = e.finished;
        slot.second.push_back(std::move(e));
        if (finished) channels_.erase(it);
      }
    }
    for (auto& [ptr, slot] : by_channel) slot.first->push(slot.second);
  }
}

}  // namespace upg::server
