#include "io/gguf-dequant.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "upg/error.h"

namespace upg::io {

namespace {

constexpr int kQK = 32;    // QK4_0 = QK4_1 = QK8_0
constexpr int kQKK = 256;  // QK_K

// Branch-free so the compiler vectorizes it: an exponent of all ones is Inf or NaN.
bool all_finite(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    bad |= uint32_t((b & 0x7F800000u) == 0x7F800000u);
  }
  return bad == 0;
}

inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// block_q4_0 { f16 d; u8 qs[16]; }: low nibbles are elements 0..15, high nibbles 16..31.
void dq_q4_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 18, y += kQK) {
    const float d = half_at(x);
    const uint8_t* qs = x + 2;
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(int(qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = float(int(qs[j] >> 4) - 8) * d;
    }
  }
}

// block_q4_1 { f16 d; f16 m; u8 qs[16]; }
void dq_q4_1(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 20, y += kQK) {
    const float d = half_at(x);
    const float m = half_at(x + 2);
    const uint8_t* qs = x + 4;
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = float(qs[j] >> 4) * d + m;
    }
  }
}

// block_q8_0 { f16 d; i8 qs[32]; }
void dq_q8_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 34, y += kQK) {
    const float d = half_at(x);
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 2);
    for (int j = 0; j < kQK; ++j) y[j] = float(qs[j]) * d;
  }
}

// The 12 scale bytes of Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit mins.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }
void dq_q4_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 144) {
    const float d = half_at(x);
    const float dmin = half_at(x + 2);
    const uint8_t* scales = x + 4;
    const uint8_t* q = x + 16;
    for (int j = 0, is = 0; j < kQKK; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      scale_min_k4(is, scales, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(is + 1, scales, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
void dq_q5_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 176) {
    const float d = half_at(x);
    const float dmin = half_at(x + 2);
    const uint8_t* scales = x + 4;
    const uint8_t* qh = x + 16;
    const uint8_t* ql = x + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < kQKK; j += 64, is += 2, ql += 32) {
      uint8_t sc, m;
      scale_min_k4(is, scales, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      scale_min_k4(is + 1, scales, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }
void dq_q6_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 210) {
    const float d = half_at(x + 208);
    const uint8_t* ql = x;
    const uint8_t* qh = x + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
    for (int n = 0; n < kQKK; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * float(sc[is + 0]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

void from_f32(const float* src, DType t, std::byte* dst, int64_t n) {
  if (t == DType::F32) {
    std::memcpy(dst, src, size_t(n) * 4);
    return;
  }
  auto* out = reinterpret_cast<uint16_t*>(dst);
  if (t == DType::F16)
    for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(src[i]);
  else
    for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_bf16(src[i]);
}

}  // namespace

void dequantize_row(DType t, const std::byte* src, float* dst, int64_t n) {
  auto* x = reinterpret_cast<const uint8_t*>(src);
  const int64_t be = dtype_block_elems(t);
  if (n % be != 0)
    throw Error(fmt::format("{} elements is not a multiple of the {} block size {}", n, dtype_name(t), be));
  const int64_t nb = n / be;
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: convert_to_f32(t, src, dst, n); return;
    case DType::Q4_0: dq_q4_0(x, dst, nb); return;
    case DType::Q4_1: dq_q4_1(x, dst, nb); return;
    case DType::Q8_0: dq_q8_0(x, dst, nb); return;
    case DType::Q4_K: dq_q4_k(x, dst, nb); return;
    case DType::Q5_K: dq_q5_k(x, dst, nb); return;
    case DType::Q6_K: dq_q6_k(x, dst, nb); return;
    default: throw Error(fmt::format("cannot dequantize tensors of type {}", dtype_name(t)));
  }
}

void convert_rows(DType src_type, const std::byte* src, int64_t rows, int64_t cols, DType dst_type, std::byte* dst,
                  std::span<const int64_t> src_rows) {
  if (dst_type != DType::F32 && dst_type != DType::F16 && dst_type != DType::BF16)
    throw Error(fmt::format("cannot convert tensors to {} (expected F32, F16 or BF16)", dtype_name(dst_type)));
  switch (src_type) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1: case DType::Q8_0:
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: break;
    default: throw Error(fmt::format("cannot dequantize tensors of type {}", dtype_name(src_type)));
  }
  if (!src_rows.empty()) {
    if (int64_t(src_rows.size()) != rows)
      throw Error(fmt::format("row map has {} entries for {} rows", src_rows.size(), rows));
    for (int64_t r : src_rows)
      if (r < 0 || r >= rows) throw Error(fmt::format("row map entry {} is outside [0, {})", r, rows));
  }
  const size_t in_row = dtype_bytes(src_type, cols);
  const size_t out_row = dtype_bytes(dst_type, cols);
  const bool same = src_type == dst_type;

  // A NaN or infinite block scale turns its row into NaNs, which would reach the logits
  // and sample nothing. The check runs on the fp32 row while it is in L1: a pass over
  // what dequantization just wrote.
  const bool check = dtype_is_quantized(src_type);
  std::atomic<int64_t> bad_row{rows};
  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<float> scratch(same || dst_type == DType::F32 ? 0 : size_t(cols));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t s = src_rows.empty() ? r : src_rows[size_t(r)];
      const std::byte* in = src + size_t(s) * in_row;
      std::byte* out = dst + size_t(r) * out_row;
      if (same) {
        std::memcpy(out, in, in_row);
        continue;
      }
      float* row = dst_type == DType::F32 ? reinterpret_cast<float*>(out) : scratch.data();
      dequantize_row(src_type, in, row, cols);
      if (check && !all_finite(row, cols)) {
        int64_t prev = bad_row.load();
        while (r < prev && !bad_row.compare_exchange_weak(prev, r)) {
        }
      }
      if (dst_type != DType::F32) from_f32(row, dst_type, out, cols);
    }
  };
  auto report = [&] {
    if (const int64_t r = bad_row.load(); r < rows)
      throw Error(fmt::format("row {} holds a non-finite value (a NaN or infinite block scale)",
                              src_rows.empty() ? r : src_rows[size_t(r)]));
  };

  // Threads only pay off for big tensors; norms and biases convert inline.
  const int64_t elems = rows * cols;
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  unsigned n_threads = unsigned(std::min<int64_t>({int64_t(hw), rows, elems / (1 << 18) + 1}));
  if (n_threads <= 1) {
    work(0, rows);
    report();
    return;
  }
  std::vector<std::thread> pool;
  int64_t per = (rows + n_threads - 1) / n_threads;
  for (unsigned t = 0; t < n_threads; ++t) {
    int64_t r0 = int64_t(t) * per, r1 = std::min(rows, r0 + per);
    if (r0 >= r1) break;
    pool.emplace_back(work, r0, r1);
  }
  for (auto& th : pool) th.join();
  report();
}

}  // namespace upg::io
