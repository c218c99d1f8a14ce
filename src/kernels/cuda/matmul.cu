// y = x W^T on the GPU for every DeviceWeight form, fp32 activations and accumulation.
//
// One warp per output row, four rows per block; each warp reads its row once for up to
// NT tokens (NT = 1 for a decode step, 8 for a batch, whose rows then come from L2 for
// the later token groups). Dense rows are read 16 bytes a lane where the row allows
// (cols % 8 == 0), block-form rows 4 code bytes a lane, so a warp's loads are coalesced.
// fp32 activations (not int8 as on the CPU): a decode step's GEMV is bound by the
// weight bytes, which the activations' precision does not change, and fp32 keeps every
// form within float rounding of the CPU's reference kernels.
// Hand-written rather than cuBLAS: cuBLAS has no int8-weight-times-fp32 or GGUF-block
// GEMV, and one kernel family keeps the forms consistent; cuBLAS for large F16/BF16
// batches is a later step.
#include <cuda_fp16.h>

#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "upg/core/error.h"

namespace upg::cuda {

namespace {

constexpr int kWarps = 4;

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Eight consecutive values of a dense row from one aligned 16-byte (8 for I8) load.
template <WeightKind K>
__device__ inline void load8(const void* row, int64_t c, float w[8]) {
  if constexpr (K == WeightKind::F32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(row) + c);
    const float4 a = p[0], b = p[1];
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  } else if constexpr (K == WeightKind::I8) {
    const uint2 q = *reinterpret_cast<const uint2*>(static_cast<const int8_t*>(row) + c);
    const int8_t* b = reinterpret_cast<const int8_t*>(&q);
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = float(b[i]);
  } else {
    const uint4 q = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(row) + c);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(&q);
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = K == WeightKind::F16 ? half_bits_to_float(h[i]) : bf16_bits_to_float(h[i]);
  }
}

template <WeightKind K>
__device__ inline float load1(const void* row, int64_t c) {
  if constexpr (K == WeightKind::F32) return static_cast<const float*>(row)[c];
  if constexpr (K == WeightKind::I8) return float(static_cast<const int8_t*>(row)[c]);
  if constexpr (K == WeightKind::F16) return half_bits_to_float(static_cast<const uint16_t*>(row)[c]);
  return bf16_bits_to_float(static_cast<const uint16_t*>(row)[c]);
}

template <WeightKind K>
__host__ __device__ constexpr int64_t elem_bytes() {
  return K == WeightKind::F32 ? 4 : K == WeightKind::I8 ? 1 : 2;
}

// Writes the warp's sums: y[t, r] = acc * row scale + bias (added to y with accumulate).
template <int NT>
__device__ inline void finish(const DeviceWeight& w, int64_t r, float (&acc)[NT], int64_t t0, int nt, float* y,
                              bool accumulate) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float v = warp_sum(acc[t]);
    if (lane == 0 && t < nt) {
      float& out = y[(t0 + t) * w.rows + r];
      const float value = v * (w.scales ? w.scales[r] : 1.0f) + (w.bias ? w.bias[r] : 0.0f);
      out = accumulate ? out + value : value;
    }
  }
}

// This warp's row, and the tokens [t0, t0 + nt) of its block's token group.
struct Task {
  int lane, nt;
  int64_t row, t0;
};
template <int NT>
__device__ inline Task task_of(const DeviceWeight& w, int64_t n) {
  const int64_t t0 = int64_t(blockIdx.y) * NT;
  return {int(threadIdx.x % 32), int(n - t0 < NT ? n - t0 : NT), int64_t(blockIdx.x) * kWarps + threadIdx.x / 32, t0};
}

template <WeightKind K, bool Vec, int NT>
__global__ void __launch_bounds__(kWarps * 32) dense_kernel(DeviceWeight w, const float* x, int64_t n, float* y,
                                                               bool accumulate) {
  pdl_wait();
  pdl_trigger();
  const Task task = task_of<NT>(w, n);
  if (task.row >= w.rows) return;
  const int lane = task.lane, nt = task.nt;
  const int64_t r = task.row, t0 = task.t0, cols = w.cols;
  const void* row = static_cast<const char*>(w.data) + r * cols * elem_bytes<K>();
  float acc[NT] = {};
  int64_t done = 0;
  if constexpr (Vec) {
    const int64_t units = cols / 8;
    for (int64_t u = lane; u < units; u += 32) {
      float wv[8];
      load8<K>(row, u * 8, wv);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= nt) break;
        const float4* xp = reinterpret_cast<const float4*>(x + (t0 + t) * cols + u * 8);
        const float4 a = xp[0], b = xp[1];
        acc[t] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z +
                  wv[7] * b.w;
      }
    }
    done = units * 8;
  }
  for (int64_t c = done + lane; c < cols; c += 32) {
    const float wv = load1<K>(row, c);
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (t < nt) acc[t] += wv * x[(t0 + t) * cols + c];
  }
  finish<NT>(w, r, acc, t0, nt, y, accumulate);
}

// Block form: lane takes 4 code bytes a step. 8-bit codes: 4 columns in one sub-block.
// 4-bit: byte 32v + k holds columns 64v + k (low nibble) and 64v + 32 + k (high), so 4
// bytes hold two runs of 4 columns, each inside one sub-block (sub is 16 or 32); 5- and
// 6-bit codes add their high bits from the row's planes after the nibbles. Columns
// past cols (the padding to 64) are skipped: their codes and scales are 0, but x has
// no values there.
template <int Bits, int NT>
__global__ void __launch_bounds__(kWarps * 32) block_kernel(DeviceWeight w, const float* x, int64_t n, float* y,
                                                               bool accumulate) {
  pdl_wait();
  pdl_trigger();
  const Task task = task_of<NT>(w, n);
  if (task.row >= w.rows) return;
  const int lane = task.lane, nt = task.nt;
  const int64_t r = task.row, t0 = task.t0, cols = w.cols;
  const uint8_t* codes = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  const uint16_t* dr = w.d + r * w.subs;
  const uint16_t* mr = w.has_min ? w.m + r * w.subs : nullptr;
  float acc[NT] = {};
  auto run4 = [&](int64_t c, const int (&q)[4]) {
    if (c >= cols) return;
    const float d = half_bits_to_float(dr[c / w.sub]);
    const float m = mr ? half_bits_to_float(mr[c / w.sub]) : w.offset * d;
    float wv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) wv[i] = d * float(w.lut ? w.lut[q[i]] : q[i]) + m;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t >= nt) break;
      const float4 a = *reinterpret_cast<const float4*>(x + (t0 + t) * cols + c);
      acc[t] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w;
    }
  };
  if constexpr (Bits <= 3) {  // planes only: 4 columns a step, each code from its planes
    for (int64_t c = 4 * lane; c < w.subs * w.sub; c += 4 * 32) {
      int q[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) q[i] = block_plane_bits(w, codes, c / 64, int(c % 64) + i);
      run4(c, q);
    }
    finish<NT>(w, r, acc, t0, nt, y, accumulate);
    return;
  }
  const int64_t units = (Bits == 8 ? w.row_bytes : w.subs * w.sub / 2) / 4;  // the nibbles, not the planes
  for (int64_t u = lane; u < units; u += 32) {
    const uint32_t word = reinterpret_cast<const uint32_t*>(codes)[u];
    if constexpr (Bits == 8) {
      const int q[4] = {int(word & 0xFF), int((word >> 8) & 0xFF), int((word >> 16) & 0xFF), int(word >> 24)};
      run4(u * 4, q);
    } else {
      const int64_t b = u * 4, c = (b / 32) * 64 + b % 32;
      int lo[4] = {int(word & 0xF), int((word >> 8) & 0xF), int((word >> 16) & 0xF), int((word >> 24) & 0xF)};
      int hi[4] = {int((word >> 4) & 0xF), int((word >> 12) & 0xF), int((word >> 20) & 0xF),
                         int((word >> 28) & 0xF)};
      if constexpr (Bits == 5 || Bits == 6) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          lo[i] |= block_plane_bits(w, codes, c / 64, int(c % 64) + i);
          hi[i] |= block_plane_bits(w, codes, c / 64, int(c % 64) + 32 + i);
        }
      }
      run4(c, lo);
      run4(c + 32, hi);
    }
  }
  finish<NT>(w, r, acc, t0, nt, y, accumulate);
}

template <int NT>
void launch_nt(const DeviceWeight& w, const float* x, int64_t n, float* y, bool acc, const Stream& s) {
  const dim3 grid(unsigned((w.rows + kWarps - 1) / kWarps), unsigned((n + NT - 1) / NT));
  const bool vec = w.cols % 8 == 0;
  const dim3 block(kWarps * 32);
  switch (w.kind) {
#define UPG_DENSE(KIND)                                                                                   \
  case WeightKind::KIND:                                                                                  \
    launch("matmul", vec ? dense_kernel<WeightKind::KIND, true, NT> : dense_kernel<WeightKind::KIND, false, NT>, \
           grid, block, 0, s, w, x, n, y, acc);                                                           \
    break;
    UPG_DENSE(F32)
    UPG_DENSE(F16)
    UPG_DENSE(BF16)
    UPG_DENSE(I8)
#undef UPG_DENSE
    case WeightKind::Block: {
      auto* k = w.bits == 8   ? block_kernel<8, NT>
                : w.bits == 6 ? block_kernel<6, NT>
                : w.bits == 5 ? block_kernel<5, NT>
                : w.bits == 3 ? block_kernel<3, NT>
                : w.bits == 2 ? block_kernel<2, NT>
                              : block_kernel<4, NT>;
      launch("matmul", k, grid, block, 0, s, w, x, n, y, acc);
      break;
    }
    case WeightKind::Nm24: break;  // refused by matmul()
  }
}

}  // namespace

void matmul(const DeviceWeight& w, const float* x, int64_t n, float* y, bool accumulate, const Stream& s) {
  if (n <= 0 || w.rows <= 0) return;
  // The backend makes this form only where matmul_int8 runs it (runs_int8).
  if (w.kind == WeightKind::Nm24) throw Error("CUDA matmul: 2:4 weights run with int8 activations only");
  if (n == 1) return launch_nt<1>(w, x, n, y, accumulate, s);
  launch_nt<8>(w, x, n, y, accumulate, s);
}

}  // namespace upg::cuda
