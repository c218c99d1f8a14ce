#include "server/completion.h"

#include <algorithm>

#include <fmt/format.h>

#include "server/chat-prompt.h"
#include "upg/core/error.h"

namespace upg::server {

namespace {

double seconds(Completion::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Completion::Completion(const CompletionContext& ctx, ApiRequest req, Clock::time_point arrival, uint64_t serial)
    : ctx_(ctx), req_(std::move(req)), arrival_(arrival) {
  head_.endpoint = req_.endpoint;
  head_.id = make_response_id(req_.endpoint, serial);
  head_.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  head_.model = ctx_.model_id;
  head_.logprobs = req_.logprobs >= 0;

  const Tokenizer& tok = ctx_.tokenizer;
  std::vector<std::vector<int32_t>> prompts;
  if (req_.endpoint == Endpoint::kChat) {
    tool_format_ = &tool_call_format_for(tok.chat_template_source());
    // Tool calls are held to the tools' schemas by the grammar engine: free text until
    // the format's call opener under "auto", at least one call under "required".
    if (req_.tools.active()) {
      GrammarSpec spec;
      spec.kind = GrammarKind::kStructuralTag;
      spec.text = tool_call_structural_tag(*tool_format_, req_.tools).dump();
      req_.grammar = std::move(spec);
      req_.grammar_field = "tools";
    }
    prompts.push_back(tok.encode(render_chat_prompt(tok, req_.messages, req_.tools, *tool_format_), tok.add_bos(), true));
  } else {
    for (const PromptInput& p : req_.prompts)
      prompts.push_back(p.is_tokens ? p.tokens : tok.encode(p.text, tok.add_bos(), true));
  }
  const std::string prompt_field = req_.endpoint == Endpoint::kChat ? "messages" : "prompt";
  std::vector<Request> requests;
  for (const std::vector<int32_t>& prompt : prompts) {
    const int len = int(prompt.size());
    if (len >= ctx_.context_length)
      throw ApiError(400,
                     fmt::format("{}: {} tokens do not fit the context of {} tokens (one more is needed to generate)",
                                 prompt_field, len, ctx_.context_length),
                     prompt_field, "invalid_request_error", "context_length_exceeded");
    prompt_tokens_ += len;
    for (int j = 0; j < req_.n; ++j) {
      Request r;
      r.prompt = prompt;
      r.sampling = req_.sampling;
      // Each choice its own stream: seed + choice index when seeded, a random seed else.
      if (req_.seeded) r.sampling.seed = req_.sampling.seed + uint64_t(requests.size());
      // max_tokens is capped by what the context leaves (finish_reason "length").
      r.max_new_tokens = req_.max_tokens < 0 ? -1 : std::min(req_.max_tokens, ctx_.context_length - len);
      r.stop_strings = req_.stop;
      r.ignore_eos = req_.ignore_eos;
      r.top_logprobs = req_.logprobs;
      r.grammar = req_.grammar;
      requests.push_back(std::move(r));
    }
  }
  try {
    ids_ = ctx_.loop.submit(std::move(requests), channel_);
  } catch (const ParamError& e) {
    // The grammar's compiler names its kind (grammar_param): the request field it came
    // from is what the client sent.
    const bool grammar = req_.grammar && e.param() == grammar_param(req_.grammar->kind);
    throw bad_field(grammar ? req_.grammar_field : field_for_param(e.param(), req_.endpoint), e.problem());
  }
  choices_.resize(ids_.size());
  for (size_t i = 0; i < ids_.size(); ++i) {
    choices_[i].done.index = int(i);
    if (req_.tools.active())
      choices_[i].tools = std::make_unique<ToolCallParser>(*tool_format_, req_.tools, tool_call_id_prefix(int(i)));
    choice_of_[ids_[i]] = int(i);
  }
  unfinished_ = int(ids_.size());
}

Completion::~Completion() { cancel_open(); }

void Completion::cancel_open() {
  std::vector<int64_t> open;
  for (size_t i = 0; i < ids_.size(); ++i)
    if (!choices_[i].finished) {
      open.push_back(ids_[i]);
      choices_[i].finished = true;  // its last events are not waited for
    }
  unfinished_ = 0;
  if (!open.empty()) ctx_.loop.cancel(open);
}

bool Completion::pump(const std::function<void(int, const RequestEvent&)>& on_event, const ClientProbe& client_here) {
  // After the timeout the choices are cancelled; their last events follow within a step.
  const Clock::time_point deadline = timed_out_ ? Clock::now() + std::chrono::seconds(1) : arrival_ + ctx_.timeout;
  // A request waiting in the queue or in a long prefill gets no event for a while: the
  // wait wakes to ask the probe. Asked at most this often, as each asking is a system call
  // or two and events come every step.
  constexpr auto kProbeInterval = std::chrono::milliseconds(100);
  scratch_.clear();
  const bool got = channel_->wait(scratch_, client_here ? std::min(deadline, next_probe_) : deadline);
  if (client_here && Clock::now() >= next_probe_) {
    if (!client_here()) {
      cancel_open();
      return false;
    }
    next_probe_ = Clock::now() + kProbeInterval;
  }
  if (!got) {
    if (!timed_out_ && Clock::now() >= deadline) {
      timed_out_ = true;
      ctx_.loop.cancel(ids_);
    }
    return true;
  }
  for (const RequestEvent& e : scratch_) {
    auto it = choice_of_.find(e.id);
    if (it == choice_of_.end()) continue;
    on_event(it->second, e);
    record(it->second, e);
  }
  return true;
}

void Completion::record(int choice, const RequestEvent& e) {
  ChoiceState& c = choices_[size_t(choice)];
  const Clock::time_point now = Clock::now();
  if (e.token >= 0) {
    if (!c.any_token)
      ctx_.metrics.observe_time_to_first_token(seconds(now - arrival_));
    else
      ctx_.metrics.observe_inter_token(seconds(now - c.last_token));
    c.any_token = true;
    c.last_token = now;
    if (head_.logprobs) {
      c.done.logprobs.push_back(logprob_of(e));
      c.token_bytes += int64_t(c.done.logprobs.back().token.size());
    }
  }
  c.done.text += e.text;
  if (e.finished && !c.finished) {
    c.finished = true;
    c.done.reason = e.reason;
    completion_tokens_ += e.generated_tokens;
    if (--unfinished_ == 0) ctx_.metrics.observe_end_to_end(seconds(now - arrival_));
  }
}

TokenLogprob Completion::logprob_of(const RequestEvent& e) const {
  TokenLogprob t;
  t.token = ctx_.tokenizer.token_bytes(e.token);
  t.logprob = e.logprob;
  for (const auto& [id, lp] : e.top_logprobs) t.top.emplace_back(ctx_.tokenizer.token_bytes(id), lp);
  return t;
}

Usage Completion::usage() const { return {prompt_tokens_, completion_tokens_}; }

std::string Completion::tool_call_id_prefix(int choice) const {
  // Unique within the server's life: the response id's serial and the choice.
  return fmt::format("call_{}_{}", head_.id.substr(head_.id.find('-') + 1), choice);
}

void Completion::split_tool_calls(int i) {
  ChoiceState& state = choices_[size_t(i)];
  Choice& c = state.done;
  ToolCallParser::Output o = state.tools->feed(c.text, true);
  c.text = std::move(o.content);
  c.tool_calls = std::move(o.calls);
  c.called_tools = !c.tool_calls.empty();
}

std::optional<nlohmann::json> Completion::collect(const ClientProbe& client_here) {
  while (unfinished_ > 0)
    if (!pump([](int, const RequestEvent&) {}, client_here)) return std::nullopt;
  std::vector<Choice> out;
  out.reserve(choices_.size());
  for (size_t i = 0; i < choices_.size(); ++i) {
    if (choices_[i].tools) split_tool_calls(int(i));
    out.push_back(choices_[i].done);
  }
  return completion_response(head_, out, usage());
}

bool Completion::stream(const std::function<bool(std::string_view)>& write, const ClientProbe& client_here) {
  bool ok = true;
  auto send = [&](const nlohmann::json& j) { ok = ok && write(sse_event(j)); };
  if (req_.endpoint == Endpoint::kChat)
    for (const ChoiceState& c : choices_) {
      Choice role;
      role.index = c.done.index;
      send(stream_chunk(head_, role, true, req_.include_usage));
    }
  while (ok && unfinished_ > 0) {
    ok = pump([&](int i, const RequestEvent& e) {
      ChoiceState& c = choices_[size_t(i)];
      Choice d;
      d.index = i;
      d.text = e.text;
      d.text_offset = c.token_bytes;
      if (c.tools) {  // text that may open a tool call is held back until it does or cannot
        ToolCallParser::Output o = c.tools->feed(e.text, e.finished);
        d.text = std::move(o.content);
        d.tool_call_base = int(c.done.tool_calls.size());
        d.tool_calls = std::move(o.calls);
        c.done.tool_calls.insert(c.done.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
        d.called_tools = !c.done.tool_calls.empty();
      }
      if (head_.logprobs && e.token >= 0) d.logprobs.push_back(logprob_of(e));
      if (e.finished) d.reason = e.reason;
      if (d.text.empty() && d.tool_calls.empty() && d.logprobs.empty() && !e.finished) return;  // held back
      send(stream_chunk(head_, d, false, req_.include_usage));
    }, client_here) && ok;
  }
  if (ok && req_.include_usage) send(usage_chunk(head_, usage()));
  ok = ok && write(sse_done());
  if (!ok) cancel_open();  // the client went away: what is left frees its blocks now
  return ok;
}

}  // namespace upg::server
