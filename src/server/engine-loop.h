#pragma once
// The one thread that runs Engine::step, and the hand-off of each step's events to the
// HTTP threads waiting on them. An HTTP thread submits its engine requests with a
// Channel; the loop appends every event of those requests to that channel and wakes its
// reader. A reader that goes away (client disconnected, timeout) cancels its requests;
// their last events still arrive and are dropped with the channel.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "upg/engine/engine.h"

namespace upg::server {

// The events of one HTTP request's engine requests (several when n > 1 or several prompts).
class Channel {
 public:
  // Waits until there are events or `deadline` passes; moves them to `out` (appending).
  // Returns false when it timed out with nothing new. Throws ApiError (500) when the
  // engine loop failed.
  bool wait(std::vector<RequestEvent>& out, std::chrono::steady_clock::time_point deadline);

 private:
  friend class EngineLoop;
  void push(std::vector<RequestEvent>& events);
  void fail(const std::string& why);

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestEvent> events_;
  std::string error_;
};

class EngineLoop {
 public:
  explicit EngineLoop(Engine& engine);
  ~EngineLoop();  // stop()
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Submits every request, their events to go to `channel`; all or none: when one is
  // refused (Engine::submit's ParamError, rethrown) those before it are cancelled.
  // Returns the engine ids, in order.
  std::vector<int64_t> submit(std::vector<Request> requests, const std::shared_ptr<Channel>& channel);
  void cancel(const std::vector<int64_t>& ids);
  // Ends every request (shutdown past its grace period).
  void cancel_all();
  // Engine requests submitted and not yet finished.
  size_t live() const;
  EngineStats stats() const { return engine_.stats(); }
  // Ends the thread (requests still live get no more events).
  void stop();

 private:
  void run();

  Engine& engine_;
  mutable std::mutex mu_;  // guards channels_ and failed_
  std::unordered_map<int64_t, std::shared_ptr<Channel>> channels_;
  std::string failed_;  // why the loop stopped on an engine error; submits are refused then
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace upg::server
