#include "server/metrics.h"

#include <gtest/gtest.h>

namespace upg::server {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counts in that bucket (le)
  h.observe(0.5);
  h.observe(7);
  const std::string t = h.render("x");
  EXPECT_TRUE(has_line(t, "x_bucket{le=\"0.1\"} 2")) << t;
  EXPECT_TRUE(has_line(t, "x_bucket{le=\"1\"} 3")) << t;
  EXPECT_TRUE(has_line(t, "x_bucket{le=\"+Inf\"} 4")) << t;
  EXPECT_TRUE(has_line(t, "x_sum 7.65")) << t;
  EXPECT_TRUE(has_line(t, "x_count 4")) << t;
}

TEST(Metrics, RendersRequestsAndEngine) {
  Metrics m;
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 429);
  m.observe_time_to_first_token(0.2);
  const std::string loading = m.render(nullptr);
  EXPECT_TRUE(has_line(loading, "upg_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2")) << loading;
  EXPECT_TRUE(has_line(loading, "upg_requests_total{endpoint=\"/v1/completions\",status=\"429\"} 1"));
  EXPECT_TRUE(has_line(loading, "upg_ready 0"));
  EXPECT_TRUE(has_line(loading, "upg_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has_line(loading, "# TYPE upg_inter_token_seconds histogram"));
  EXPECT_EQ(loading.find("upg_kv_blocks_used"), std::string::npos);
  EngineGauges g;
  g.running = 3;
  g.kv_blocks_used = 12;
  g.kv_blocks_free = 500;
  g.generated_tokens = 99;
  g.spec_accepted = 4;
  const std::string ready = m.render(&g);
  EXPECT_TRUE(has_line(ready, "upg_ready 1"));
  EXPECT_TRUE(has_line(ready, "upg_requests_running 3"));
  EXPECT_TRUE(has_line(ready, "upg_kv_blocks_used 12"));
  EXPECT_TRUE(has_line(ready, "upg_kv_blocks_free 500"));
  EXPECT_TRUE(has_line(ready, "upg_generated_tokens_total 99"));
  EXPECT_TRUE(has_line(ready, "upg_spec_accepted_tokens_total 4"));
  EXPECT_TRUE(has_line(ready, "# TYPE upg_generated_tokens_total counter"));
}

}  // namespace
}  // namespace upg::server
