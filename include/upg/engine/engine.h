#pragma once
// Many requests through one model (vLLM's v1 engine in spirit): requests are plain data
// (upg/engine/request.h), step() runs one scheduler step (every running sequence's next
// tokens and chunks of waiting prompts in one forward pass) and returns what each
// request produced: tokens, their text, logprobs, and the finish with its usage.
// submit(), cancel(), stats() and wait_for_work() may be called from other threads (a
// server's HTTP threads); step() and idle() run on one thread, the engine's loop.
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "upg/engine/request.h"
#include "upg/model/model.h"

namespace upg {

// The tokens that end a request by default: the tokenizer's stop ids (end of sequence
// and the chat template's end of turn) and the config's EOS ids.
std::vector<int32_t> default_stop_tokens(const Model& model);

class Engine {
 public:
  // The KV pool is the model's (ModelOptions::kv_blocks, kv_block_size). Throws
  // ParamError for limits below 1.
  Engine(Model& model, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; it joins at the next step. Returns its id. Thread-safe. Throws
  // ParamError for a bad request (empty prompt, token ids outside the vocabulary, bad
  // sampling parameters, an empty stop string, top_logprobs out of range, a prompt that
  // cannot fit the context or the KV pool, or a prompt plus max_new_tokens past the
  // context).
  int64_t submit(Request r);
  // Ends a request at the next step (a finished event with StopReason::kCallback is
  // reported); unknown or finished ids are ignored. Thread-safe.
  void cancel(int64_t id);
  // Compiles a grammar into the engine's cache now, so that requests with it start at
  // once; throws ParamError for a bad or unsupported one, as submit would. Thread-safe.
  void prepare_grammar(const GrammarSpec& spec);

  // Runs one step; returns the events of this step, in the batch's request order.
  std::vector<RequestEvent> step();
  // No request is queued, waits or runs. Call from the step() thread.
  bool idle() const;
  // Blocks until a request is queued, waiting or running, or a cancel is pending, or
  // `timeout` passes; returns whether there is work. Thread-safe (an engine loop calls
  // it between steps instead of spinning).
  bool wait_for_work(std::chrono::milliseconds timeout);
  // The counters as of the last step. Thread-safe.
  EngineStats stats() const;

  const Model& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upg
