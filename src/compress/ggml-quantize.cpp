#include "compress/ggml-quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "upg/io/gguf-types.h"
#include "upg/core/error.h"
#include "upg/core/tensor.h"

namespace upg::compress {

bool ggml_type_writable(uint32_t type) {
  return type == io::GGML_F16 || type == io::GGML_Q8_0 || type == io::GGML_Q4_0;
}

size_t ggml_bytes(uint32_t type, int64_t n) {
  if (type == io::GGML_F16) return size_t(n) * 2;
  return size_t(n / 32) * (type == io::GGML_Q8_0 ? 34 : 18);
}

void quantize_ggml_rows(uint32_t type, const float* x, int64_t n, std::span<std::byte> out) {
  if (!ggml_type_writable(type)) throw Error(fmt::format("quantize_ggml_rows: ggml type {} is not written", type));
  if (type != io::GGML_F16 && n % 32 != 0)
    throw Error(fmt::format("quantize_ggml_rows: {} values are not whole blocks of 32", n));
  if (out.size() < ggml_bytes(type, n)) throw Error("quantize_ggml_rows: output too small");
  std::byte* o = out.data();
  auto put = [&](const void* p, size_t k) {
    std::memcpy(o, p, k);
    o += k;
  };
  if (type == io::GGML_F16) {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = fp32_to_fp16(x[i]);
      put(&h, 2);
    }
    return;
  }
  for (int64_t b = 0; b < n; b += 32) {
    const float* v = x + b;
    if (type == io::GGML_Q8_0) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
      const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
      const uint16_t dh = fp32_to_fp16(d);
      put(&dh, 2);
      int8_t q[32];
      for (int i = 0; i < 32; ++i) q[i] = int8_t(std::lround(v[i] * id));
      put(q, 32);
    } else {  // Q4_0
      float amax = 0, max = 0;
      for (int i = 0; i < 32; ++i)
        if (std::fabs(v[i]) > amax) amax = std::fabs(v[i]), max = v[i];
      const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
      const uint16_t dh = fp32_to_fp16(d);
      put(&dh, 2);
      uint8_t q[16];
      for (int i = 0; i < 16; ++i) {
        const int lo = std::min(15, int(v[i] * id + 8.5f)), hi = std::min(15, int(v[i + 16] * id + 8.5f));
        q[i] = uint8_t(lo | (hi << 4));
      }
      put(q, 16);
    }
  }
}

}  // namespace upg::compress
