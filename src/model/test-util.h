#pragma once
// Helpers shared by the model tests: fixture paths and JSON loading.
#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/test-paths.h"

namespace upg::test {


inline bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

inline nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open fixture " + path);
  return nlohmann::json::parse(in);
}

}  // namespace upg::test
