#include "server/metrics.h"

#include <algorithm>

#include <fmt/format.h>

namespace upg::server {

namespace {

// Prometheus prints numbers as Go does; %g-style shortest text round-trips and reads back.
std::string num(double v) { return fmt::format("{}", v); }

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void single(std::string& out, const char* name, const char* type, const char* help, int64_t v) {
  header(out, name, type, help);
  out += fmt::format("{} {}\n", name, v);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  ++counts_[i];
  sum_ += v;
  ++count_;
}

std::string Histogram::render(const std::string& name) const {
  std::string out;
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, num(bounds_[i]), cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, count_);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, num(sum_), name, count_);
  return out;
}

Metrics::Metrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      inter_token_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      e2e_({0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::observe_time_to_first_token(double s) {
  std::lock_guard lock(mu_);
  ttft_.observe(s);
}

void Metrics::observe_inter_token(double s) {
  std::lock_guard lock(mu_);
  inter_token_.observe(s);
}

void Metrics::observe_end_to_end(double s) {
  std::lock_guard lock(mu_);
  e2e_.observe(s);
}

std::string Metrics::render(const EngineGauges* g) const {
  std::string out;
  {
    std::lock_guard lock(mu_);
    header(out, "upg_requests_total", "counter", "HTTP requests by endpoint and status code");
    for (const auto& [key, n] : requests_)
      out += fmt::format("upg_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
    header(out, "upg_time_to_first_token_seconds", "histogram", "From a request's arrival to its first token");
    out += ttft_.render("upg_time_to_first_token_seconds");
    header(out, "upg_inter_token_seconds", "histogram", "Between consecutive tokens of one request");
    out += inter_token_.render("upg_inter_token_seconds");
    header(out, "upg_request_seconds", "histogram", "From a request's arrival to its last token");
    out += e2e_.render("upg_request_seconds");
  }
  single(out, "upg_ready", "gauge", "1 once the model is loaded", g ? 1 : 0);
  if (!g) return out;
  single(out, "upg_requests_running", "gauge", "Sequences in the running batch", g->running);
  single(out, "upg_requests_waiting", "gauge", "Sequences queued for the batch", g->waiting);
  single(out, "upg_kv_blocks_used", "gauge", "KV cache blocks held by requests", g->kv_blocks_used);
  single(out, "upg_kv_blocks_free", "gauge", "KV cache blocks free (cached prefixes count as free)",
         g->kv_blocks_free);
  single(out, "upg_prompt_tokens_total", "counter", "Prompt tokens of admitted requests", g->prompt_tokens);
  single(out, "upg_generated_tokens_total", "counter", "Tokens generated", g->generated_tokens);
  single(out, "upg_preemptions_total", "counter", "Sequences preempted for KV cache space", g->preemptions);
  single(out, "upg_spec_draft_tokens_total", "counter", "Speculative tokens drafted", g->spec_drafted);
  single(out, "upg_spec_accepted_tokens_total", "counter", "Speculative tokens accepted", g->spec_accepted);
  return out;
}

}  // namespace upg::server
