#include "upg/engine/generate.h"

#include <chrono>

namespace upg {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One engine step: hands request id's text to on_text and its timings and end to st.
void step_once(Engine& e, int64_t id, const TextCallback& on_text, bool& listening, Clock::time_point t0,
               Clock::time_point& t1, GenerateStats& st) {
  for (const RequestEvent& ev : e.step()) {
    if (ev.id != id) continue;
    if (ev.token >= 0 && st.generated_tokens++ == 0) {
      t1 = Clock::now();
      st.prompt_seconds = seconds_since(t0);
    }
    if (listening && !ev.text.empty() && !on_text(ev.text)) {
      listening = false;
      e.cancel(id);
    }
    if (ev.finished) {
      st.stop_reason = ev.reason;
      st.prefilled_tokens = ev.prompt_tokens - ev.cached_tokens;
      if (st.generated_tokens == 0) st.prompt_seconds = seconds_since(t0);
    }
  }
}

}  // namespace

GenerateStats generate(Engine& e, Request r, const TextCallback& on_text) {
  GenerateStats st;
  st.prompt_tokens = int(r.prompt.size());
  const auto t0 = Clock::now();
  auto t1 = t0;  // the first token's time: decode timing starts there
  const EngineStats before = e.stats();
  const int64_t id = e.submit(std::move(r));
  bool listening = true;  // until the callback says stop
  try {
    while (st.stop_reason == StopReason::kNone) step_once(e, id, on_text, listening, t0, t1, st);
  } catch (...) {
    e.cancel(id);  // an engine kept for the next turn (a chat) must not carry this request on
    throw;
  }
  st.decode_seconds = st.generated_tokens > 1 ? seconds_since(t1) : 0;
  // The engine ran this request alone (other requests' events were dropped): its
  // counters' growth is this request's.
  const EngineStats after = e.stats();
  st.forward_passes = after.steps - before.steps;
  st.drafted_tokens = after.drafted_tokens - before.drafted_tokens;
  st.accepted_tokens = after.accepted_tokens - before.accepted_tokens;
  return st;
}

}  // namespace upg
