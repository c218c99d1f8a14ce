#pragma once
// Holds back streamed text that might be the start of a stop string, so a stop string
// is never printed even when it arrives split over several tokens.
#include <string>
#include <string_view>
#include <vector>

namespace upg {

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Appends text; returns what can be shown now. Sets stopped() once a stop string
  // appears (the returned text then ends right before it).
  std::string push(std::string_view text);
  // Whatever was held back, at the end of generation without a stop.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace upg
