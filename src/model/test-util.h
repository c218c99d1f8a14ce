#pragma once
// Helpers shared by the model tests: fixture paths and JSON loading.
#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace upg::test {

inline std::string source_dir() {
  const char* env = std::getenv("UPG_SOURCE_DIR");
  return env ? env : UPG_SOURCE_DIR;
}

inline std::string default_model_path() {
  const char* env = std::getenv("UPG_MODEL");
  return env ? env : source_dir() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

inline nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open fixture " + path);
  return nlohmann::json::parse(in);
}

}  // namespace upg::test
