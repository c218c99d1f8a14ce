#pragma once
// Many requests through one model (vLLM's v1 engine in spirit): requests are plain data,
// step() runs one scheduler step (every running sequence's next tokens and chunks of
// waiting prompts in one forward pass) and returns what each request produced. submit()
// and cancel() may be called from other threads (a server's HTTP threads); step() runs on
// one thread, the engine's loop.
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/kv-manager.h"
#include "engine/scheduler.h"
#include "upg/engine/generator.h"
#include "upg/model/model.h"
#include "upg/sampling/sampling.h"

namespace upg {

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;            // with its own seed: its tokens do not depend on the others
  int max_new_tokens = 256;           // < 0: until the context is full
  std::vector<int32_t> stop_tokens;   // end of sequence (the tokenizer's EOS ids)
};

// One generated token of a request, or its end (token -1 when it ended without one:
// cancelled, or a stop token, which is not emitted).
struct RequestEvent {
  int64_t id = 0;
  int32_t token = -1;
  bool finished = false;
  StopReason reason = StopReason::kNone;
};

struct EngineOptions {
  SchedulerLimits limits;
  bool prefix_sharing = true;
};

class Engine {
 public:
  // The KV pool is the model's (ModelOptions::kv_blocks, kv_block_size).
  Engine(Model& model, EngineOptions options = {});
  ~Engine();

  // Queues a request; it joins at the next step. Returns its id. Thread-safe. Throws
  // ParamError for a bad request (empty prompt, token ids outside the vocabulary, bad
  // sampling parameters, a prompt that cannot fit the context or the KV pool).
  int64_t submit(Request r);
  // Ends a request at the next step (a finished event with StopReason::kCallback is
  // reported); unknown or finished ids are ignored. Thread-safe.
  void cancel(int64_t id);

  // Runs one step; returns the events of this step in request order of the batch.
  std::vector<RequestEvent> step();
  // No request is queued, waits or runs. Call from the step() thread.
  bool idle() const;
  // Sequences preempted (freed, to be recomputed) since the start: the pool is short.
  int64_t preemptions() const { return preemptions_; }
  // KV cache blocks not held by any request (cached prefixes count as free).
  int free_kv_blocks() const { return kv_.free_blocks(); }

 private:
  struct Live {
    explicit Live(Request r) : req(std::move(r)), sampler(req.sampling) {}
    Request req;
    Sampler sampler;  // built from req.sampling, which it validates
    int generated = 0;
  };
  void take_queued(std::vector<RequestEvent>& events);
  void end(int64_t id, StopReason reason, std::vector<RequestEvent>& events);

  Model& model_;
  KvManager kv_;
  Scheduler sched_;
  std::unordered_map<int64_t, std::unique_ptr<Live>> live_;
  Batch batch_;
  int64_t preemptions_ = 0;

  mutable std::mutex mu_;  // guards the queues below
  int64_t next_id_ = 0;
  std::vector<std::pair<int64_t, std::unique_ptr<Live>>> submitted_;
  std::vector<int64_t> cancelled_;
};

}  // namespace upg
