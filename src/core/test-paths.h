#pragma once
// Where tests and benchmarks find the repository and the default model (test-only,
// header-only). UPG_SOURCE_DIR is a compile definition of every test and bench binary;
// the environment may override both (CI sets UPG_MODEL).
#include <cstdlib>
#include <string>

namespace upg::test {

inline std::string source_dir() {
  const char* env = std::getenv("UPG_SOURCE_DIR");
  return env && *env ? env : UPG_SOURCE_DIR;
}

inline std::string default_model_path() {
  const char* env = std::getenv("UPG_MODEL");
  return env && *env ? env : source_dir() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline std::string fixture(const std::string& rel) { return source_dir() + "/tests/fixtures/" + rel; }

}  // namespace upg::test
