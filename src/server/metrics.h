#pragma once
// /metrics in the Prometheus text format (0.0.4). No Prometheus C++ client is packaged
// in Debian, and the format is a few lines of text, so it is written here: counters of
// requests by endpoint and status, latency histograms, and the engine's own counters and
// gauges as they are when scraped. Thread-safe: HTTP threads record, any thread renders.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace upg::server {

// The engine's state at scrape time (from Engine::stats()).
struct EngineGauges {
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_used = 0, kv_blocks_free = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;  // totals since start
  int64_t preemptions = 0;
  int64_t spec_drafted = 0, spec_accepted = 0;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implied
  void observe(double v);
  // The _bucket (cumulative), _sum and _count lines of metric `name`.
  std::string render(const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& endpoint, int status);
  void observe_time_to_first_token(double seconds);
  void observe_inter_token(double seconds);
  void observe_end_to_end(double seconds);
  // Everything, with the engine's values when there is an engine (nullptr while loading).
  std::string render(const EngineGauges* engine) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  Histogram ttft_, inter_token_, e2e_;
};

}  // namespace upg::server
