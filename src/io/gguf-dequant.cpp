#include "io/gguf-dequant.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "upg/format/ggml-blocks.h"
#include "upg/core/error.h"
#include "upg/core/thread-pool.h"

namespace upg::io {

namespace {

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
  const int64_t be = dtype_block_elems(t);
  if (n % be != 0)
    throw Error(fmt::format("{} elements is not a multiple of the {} block size {}", n, dtype_name(t), be));
  if (t == DType::F32 || t == DType::F16 || t == DType::BF16) return convert_to_f32(t, src, dst, n);
  if (!dtype_is_quantized(t)) throw Error(fmt::format("cannot dequantize tensors of type {}", dtype_name(t)));
  format::dequantize_ggml(t, reinterpret_cast<const uint8_t*>(src), dst, n);
}

void convert_rows(DType src_type, const std::byte* src, int64_t rows, int64_t cols, DType dst_type, std::byte* dst,
                  std::span<const int64_t> src_rows) {
  const bool is_float = src_type == DType::F32 || src_type == DType::F16 || src_type == DType::BF16;
  if (!is_float && !dtype_is_quantized(src_type))
    throw Error(fmt::format("cannot dequantize tensors of type {}", dtype_name(src_type)));
  if (dst_type != src_type && dst_type != DType::F32 && dst_type != DType::F16 && dst_type != DType::BF16)
    throw Error(fmt::format("cannot convert tensors to {} (expected F32, F16 or BF16)", dtype_name(dst_type)));
  if (!src_rows.empty()) {
    if (int64_t(src_rows.size()) != rows)
      throw Error(fmt::format("row map has {} entries for {} rows", src_rows.size(), rows));
    for (int64_t r : src_rows)
      if (r < 0 || r >= rows) throw Error(fmt::format("row map entry {} is outside [0, {})", r, rows));
  }
  const size_t in_row = dtype_bytes(src_type, cols);
  const size_t out_row = dtype_bytes(dst_type, cols);
  const bool same = src_type == dst_type;

  // A corrupt block (unpack_ggml_block's check) fails the first row that holds one,
  // whichever thread meets it.
  std::mutex bad_mutex;
  int64_t bad_row = rows;
  std::string bad_what;
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
      try {
        dequantize_row(src_type, in, row, cols);
      } catch (const Error& e) {
        const std::lock_guard lock(bad_mutex);
        if (r < bad_row) bad_row = r, bad_what = e.what();
        return;
      }
      if (dst_type != DType::F32) from_f32(row, dst_type, out, cols);
    }
  };
  auto report = [&] {
    if (bad_row < rows)
      throw Error(fmt::format("row {}: {}", src_rows.empty() ? bad_row : src_rows[size_t(bad_row)], bad_what));
  };

  // Threads only pay off for big tensors; norms and biases convert inline.
  const int64_t elems = rows * cols;
  const int n_threads = int(std::min<int64_t>({ThreadPool::hardware_threads(), rows, elems / (1 << 18) + 1}));
  if (n_threads <= 1) {
    work(0, rows);
    report();
    return;
  }
  ThreadPool pool(n_threads);
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1, int) { work(r0, r1); });
  report();
}

}  // namespace upg::io
