#pragma once
// One /v1/chat/completions or /v1/completions request carried out: its prompts
// tokenized, one engine request per choice submitted, the events gathered into the
// response (collect) or written out as server-sent events as they come (stream).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api-request.h"
#include "server/api-response.h"
#include "server/engine-loop.h"
#include "server/metrics.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::server {

// What a completion needs from the server around it.
struct CompletionContext {
  const Tokenizer& tokenizer;
  EngineLoop& loop;
  Metrics& metrics;
  std::string model_id;
  int context_length = 0;
  std::chrono::milliseconds timeout{600000};  // per request; then its choices end with "abort"
};

class Completion {
 public:
  using Clock = std::chrono::steady_clock;
  // Tokenizes and submits; throws ApiError (a prompt past the context, a refused
  // parameter). `serial` numbers the response id.
  Completion(const CompletionContext& ctx, ApiRequest req, Clock::time_point arrival, uint64_t serial);
  ~Completion();  // cancels what has not finished (the client went away)
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;

  // Engine requests this completion holds (n per prompt).
  int engine_requests() const { return int(ids_.size()); }
  bool streaming() const { return req_.stream; }
  // Whether the client is still there; asked while the completion waits for tokens, so
  // that one that went away cancels its request at once, not when its response is written.
  using ClientProbe = std::function<bool()>;
  // Waits for every choice; the whole response.
  nlohmann::json collect() { return *collect(ClientProbe()); }
  // The same, asking `client_here` (when given) as it waits: nullopt, the rest
  // cancelled, once the client went away.
  std::optional<nlohmann::json> collect(const ClientProbe& client_here);
  // Writes the chunks (and the usage chunk, and [DONE]) through `write` as tokens come.
  // Returns false, cancelling the rest, when write fails or `client_here` says the
  // client went away.
  bool stream(const std::function<bool(std::string_view)>& write, const ClientProbe& client_here);

 private:
  struct ChoiceState {
    Choice done;  // accumulated text, logprobs and reason
    std::unique_ptr<ToolCallParser> tools;  // chat with tools: splits the text into content and calls
    int64_t token_bytes = 0;  // bytes of the tokens so far (completions' text_offset)
    Clock::time_point last_token;
    bool any_token = false;
    bool finished = false;
  };
  // Waits for events (cancelling everything once the timeout passes); calls on_event with
  // each event's choice index, before the event is recorded. Returns false, having
  // cancelled what is open, when `client_here` says the client went away.
  bool pump(const std::function<void(int, const RequestEvent&)>& on_event, const ClientProbe& client_here);
  void cancel_open();  // the choices not finished yet
  void record(int choice, const RequestEvent& e);  // timing, usage, accumulated text
  TokenLogprob logprob_of(const RequestEvent& e) const;
  Usage usage() const;

  // The text of choice i split into content and calls (collect).
  void split_tool_calls(int i);
  std::string tool_call_id_prefix(int choice) const;

  const CompletionContext& ctx_;
  ApiRequest req_;
  const ToolCallFormat* tool_format_ = nullptr;  // the model's, when the request has tools
  Clock::time_point arrival_;
  ResponseHead head_;
  std::shared_ptr<Channel> channel_ = std::make_shared<Channel>();
  std::vector<int64_t> ids_;           // engine id per choice
  std::unordered_map<int64_t, int> choice_of_;
  std::vector<ChoiceState> choices_;
  int64_t prompt_tokens_ = 0;
  int64_t completion_tokens_ = 0;
  int unfinished_ = 0;
  bool timed_out_ = false;
  Clock::time_point next_probe_{};  // when to ask the client probe next
  std::vector<RequestEvent> scratch_;
};

}  // namespace upg::server
