#pragma once
// SHA-256 of files and strings, so upg.compression can name exactly which source and
// calibration text a file was made from (FIPS 180-4; no crypto library is a dependency).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace upg::compress {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> digest();  // finishes the hash; the object must not be updated after
  std::string hex();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);
// Streams the file; throws upg::Error naming it when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace upg::compress
