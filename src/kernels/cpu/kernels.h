#pragma once
// CPU kernels: one source per kernel compiled for every SIMD target (Highway), the best
// target chosen once at start. Shapes are given explicitly; nothing here allocates in the
// hot path. Private to kernels/cpu (and its tests and benchmarks).
#include <cstdint>

#include "upg/core/tensor.h"
#include "upg/core/thread-pool.h"
#include "upg/kernels/cpu.h"

namespace upg::kernels {

// y[t, r] = sum_c W[r, c] * x[t, c] (+ bias[r]) for t < n_tokens, r < rows.
// W: row-major [rows, cols] of F32, F16 or BF16. x: [n_tokens, cols] fp32 (row stride
// cols). y: [n_tokens, rows] fp32 (row stride rows). Work is split over rows.
void matmul(ThreadPool& pool, DType wtype, const void* W, int64_t rows, int64_t cols, const float* x,
            int64_t n_tokens, float* y, const float* bias = nullptr);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], over n elements, for each of n_tokens rows.
void rmsnorm(const float* x, const float* w, float* out, int64_t n, int64_t n_tokens, float eps);
// In-place softmax over n elements.
void softmax(float* x, int64_t n);
// x[i] = exp(scale * x[i] - m) where m = max_i(scale * x[i]), scale > 0; returns the sum
// of the new x and stores m: a softmax left unnormalized, for merging chunks of a row.
float exp_scaled(float* x, int64_t n, float scale, float* max_out);
// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
// y[i] += x[i]
void add_inplace(float* y, const float* x, int64_t n);
// Attention over many cache rows in one call, for the `heads` query heads that share
// one KV head (grouped-query attention); rows are `stride` elements apart, `dim` used of
// each (kernels/cpu/attention-rows.cpp):
//   scores[j * scores_stride + p] = dot(q + j * dim, K[p])          j < heads, p < rows
//   out[j * out_stride + i] += sum_p a[j * a_stride + p] * V[p][i]    j < heads, i < dim
// K and V rows are f32, f16 bits, or int8 with one scale per row (row p is scales[p] *
// K[p]), the types the CPU backend's KV cache holds.
void dot_rows(const float* q, int64_t heads, const float* K, int64_t stride, int64_t rows, int64_t dim, float* scores,
              int64_t scores_stride);
void dot_rows(const float* q, int64_t heads, const uint16_t* K, int64_t stride, int64_t rows, int64_t dim,
              float* scores, int64_t scores_stride);
void dot_rows(const float* q, int64_t heads, const int8_t* K, const float* scales, int64_t stride, int64_t rows,
              int64_t dim, float* scores, int64_t scores_stride);
void axpy_rows(const float* a, int64_t a_stride, int64_t heads, const float* V, int64_t stride, int64_t rows,
               int64_t dim, float* out, int64_t out_stride);
void axpy_rows(const float* a, int64_t a_stride, int64_t heads, const uint16_t* V, int64_t stride, int64_t rows,
               int64_t dim, float* out, int64_t out_stride);
void axpy_rows(const float* a, int64_t a_stride, int64_t heads, const int8_t* V, const float* scales, int64_t stride,
               int64_t rows, int64_t dim, float* out, int64_t out_stride);
// q[i] = round(x[i] / s) with s = max |x| / 127 (round to nearest even; s = 0 for a zero
// row): symmetric int8 with one scale, returned.
float quantize_i8(const float* x, int64_t n, int8_t* q);
// out[i] = x[i] as f16 bits, rounded to nearest even.
void f32_to_f16(const float* x, uint16_t* out, int64_t n);

}  // namespace upg::kernels
