// y = x W^T with int8 activations and integer dot products (dp4a), for dense int8 rows,
// UPG 2:4 int8, and the block forms whose codes are 4 or 8 bits in 32-column sub-blocks
// (Q4_0, Q4_1, Q8_0, Q4_K, UPG int4). The activations are quantized on the GPU exactly as the CPU's
// int8 kernels quantize them (kernels/cpu/int8-quantize.cpp: per 32 columns, scale
// max |x| / 127, round to nearest even), so both compute the same integer sums and
// differ only in the order their scaled parts are added.
//
// Per 16 columns (one 16-byte load of 8-bit codes, or of 4-bit codes holding 16 columns
// of two sub-blocks each) a lane does 4 or 8 dp4a per token and folds them in with
//   acc += a_scale * (d * sum(code * a) + m * sum(a))
// where sum(a) over those 16 columns was made by the quantizer, so the m term costs one
// multiply per 16 columns. Why not fp32 activations (matmul.cu): converting each code to
// a float made the block GEMVs bound by instructions at a third of the bandwidth.
// One warp per row, 8 rows per block, up to 8 tokens per block; one launch runs up to
// kMaxFused weights on the same input (a layer's q, k and v). A block first copies its
// tokens' activations into shared memory (when they fit in 48 KB), so the warps' reads
// of them wait on shared memory rather than L2. A GEMV at decode waits on memory latency
// more than on bandwidth, so each lane keeps kInFlight 16-byte weight loads (with their
// scales or positions) in flight, loads the next kInFlight before it uses the last, and
// issues its first ones before waiting on the kernel before it (launch.cuh): weights are
// never written, and their first loads then overlap that kernel's tail.
//
// 2:4 int8 reads the file's layout as it is: per 32 columns, 16 kept values (one 16-byte
// load) and their 2-bit positions (one 4-byte load), 0.625 bytes a weight against dense
// int8's 1. Each group of 4 values (two groups of 4 columns) meets its activations
// through one byte permute of the groups' two activation words, whose selector is the
// position byte spread to nibbles (nibble k = position k, + 4 for the second group), so
// a kept value costs a quarter of a dp4a and a quarter of a permute, no gather.
#include <cuda_fp16.h>

#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/matmul-int8.cuh"
#include "kernels/cuda/quantize.cuh"

namespace upg::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kInFlight = 4;
constexpr int64_t kSmemBytes = 48 << 10;

// Bytes of one token's Int8Acts: codes, scales per 32 and sums per 16 columns.
__host__ __device__ inline int64_t acts_bytes(int64_t stride) { return stride + stride / 8 + stride / 4; }

// One warp per 32 columns of a token: lanes past cols quantize 0.
__global__ void quantize_kernel(const float* x, int64_t n, int64_t cols, Int8Acts a) {
  pdl_wait();
  pdl_trigger();
  const int64_t blocks = a.stride / 32;
  const int64_t gw = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (gw >= n * blocks) return;
  const int lane = threadIdx.x % 32;
  const int64_t t = gw / blocks, b = gw % blocks, c = b * 32 + lane;
  quantize32(c < cols ? x[t * cols + c] : 0.0f, lane, a, t, b);
}

// One 16-byte load of a row and what goes with it: a 2:4 row's 4 position bytes, a block
// row's fp16 d (and m) of the one (8-bit codes) or two (4-bit) sub-blocks it covers.
struct Unit {
  uint4 wq;
  uint32_t pos;
  uint16_t d[2], m[2];
};

__device__ inline int dot4(int w, int a, int c) { return __dp4a(w, a, c); }

// The 4 dp4a of 16 codes (as 4 words of signed bytes) against 16 activations.
__device__ inline int dot16(uint4 w, int4 a) {
  return dot4(int(w.w), a.w, dot4(int(w.z), a.z, dot4(int(w.y), a.y, dot4(int(w.x), a.x, 0))));
}

// 8 positions of 2 bits (16 values' worth: two bytes of the 2:4 layout) spread to one
// nibble each: byte_perm selectors for two groups of 4 values, the second group's
// activation word being the permute's upper operand (+ 4).
__device__ inline uint32_t nm24_selectors(uint32_t x) {
  x = (x | (x << 8)) & 0x00FF00FFu;
  x = (x | (x << 4)) & 0x0F0F0F0Fu;
  x = (x | (x << 2)) & 0x33333333u;
  return x + 0x44004400u;
}

// 16 kept 2:4 values (4 words) of 32 columns against those columns' activations a0, a1.
__device__ inline int dot_nm24(uint4 w, uint32_t pos, int4 a0, int4 a1) {
  const uint32_t s0 = nm24_selectors(pos & 0xFFFFu), s1 = nm24_selectors(pos >> 16);
  int acc = dot4(int(w.x), int(__byte_perm(uint32_t(a0.x), uint32_t(a0.y), s0)), 0);
  acc = dot4(int(w.y), int(__byte_perm(uint32_t(a0.z), uint32_t(a0.w), s0 >> 16)), acc);
  acc = dot4(int(w.z), int(__byte_perm(uint32_t(a1.x), uint32_t(a1.y), s1)), acc);
  return dot4(int(w.w), int(__byte_perm(uint32_t(a1.z), uint32_t(a1.w), s1 >> 16)), acc);
}

// L lanes a row (32 / L rows a warp): narrow rows (the 576 columns of SmolLM2's q/k/v,
// gate/up and LM head) leave a whole warp a load or two a lane, so a warp takes several
// rows and keeps all their loads in flight at once.
template <Form F, int NT, bool Smem, int L>
__global__ void __launch_bounds__(kWarps * 32) int8_kernel(Fused f, Int8Acts a, int64_t n) {
  int wi = 0;
  while (wi + 1 < f.count && int64_t(blockIdx.x) >= f.first_block[wi + 1]) ++wi;
  const DeviceWeight& w = f.w[wi];
  const int lane = threadIdx.x % L;
  const int64_t r = (int64_t(blockIdx.x) - f.first_block[wi]) * (kWarps * 32 / L) + threadIdx.x / L;
  const bool live = r < w.rows;
  const int64_t row_len = F == Form::I8 ? w.cols : F == Form::N24 ? w.cols / 2 : w.row_bytes;
  // Units of one 16-byte load: 16 columns (I8, B8), 32 (B4: two nibbles), 32 (N24: 16
  // kept values, with their 4 position bytes).
  const int64_t units = live ? row_len / 16 : 0;
  const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.data) + (live ? r : 0) * row_len);
  const uint32_t* pos = F == Form::N24 ? reinterpret_cast<const uint32_t*>(w.positions + r * (w.cols / 8)) : nullptr;
  const uint16_t* dr = F == Form::B8 || F == Form::B4 ? w.d + r * w.subs : nullptr;
  const uint16_t* mr = w.has_min ? w.m + r * w.subs : nullptr;
  auto load = [&](int64_t u, Unit& x) {
    if (u >= units) return;
    x.wq = __ldg(p + u);
    if constexpr (F == Form::N24) x.pos = __ldg(pos + u);
    if constexpr (F == Form::B8 || F == Form::B4) {
      const int64_t sb = F == Form::B8 ? u / 2 : u / 2 * 2;  // the unit's (first) sub-block
#pragma unroll
      for (int i = 0; i < (F == Form::B4 ? 2 : 1); ++i) {
        x.d[i] = __ldg(dr + sb + i);
        if (mr) x.m[i] = __ldg(mr + sb + i);
      }
    }
  };
  Unit cur[kInFlight] = {};
#pragma unroll
  for (int i = 0; i < kInFlight; ++i) load(lane + L * i, cur[i]);

  pdl_wait();
  pdl_trigger();
  const int64_t t0 = int64_t(blockIdx.y) * NT;
  const int nt = int(n - t0 < NT ? n - t0 : NT);
  const int64_t blocks = a.stride / 32, halves = a.stride / 16;
  // The block's tokens t0 .. t0 + nt: token t (from 0) at q + t * stride, and so on.
  const int8_t* aq = a.q + t0 * a.stride;
  const float* as = a.scales + t0 * blocks;
  const int32_t* am = a.sums + t0 * halves;
  if constexpr (Smem) {
    extern __shared__ int4 smem[];
    int4* sq = smem;
    const int4* gq = reinterpret_cast<const int4*>(aq);
    for (int64_t i = threadIdx.x; i < nt * a.stride / 16; i += blockDim.x) sq[i] = gq[i];
    float* ss = reinterpret_cast<float*>(smem + NT * a.stride / 16);
    for (int64_t i = threadIdx.x; i < nt * blocks; i += blockDim.x) ss[i] = as[i];
    int32_t* sm = reinterpret_cast<int32_t*>(ss + NT * blocks);
    for (int64_t i = threadIdx.x; i < nt * halves; i += blockDim.x) sm[i] = am[i];
    __syncthreads();
    aq = reinterpret_cast<const int8_t*>(sq);
    as = ss;
    am = sm;
  }
  float acc[NT] = {};

  // 16 columns from column c (all in one sub-block of d, m); wq their codes as signed bytes.
  auto part = [&](int64_t c, uint4 wq, uint16_t dh, uint16_t mh) {
    float d = 1, m = 0;
    if constexpr (F == Form::B8 || F == Form::B4) {
      d = half_bits_to_float(dh);
      m = mr ? half_bits_to_float(mh) : w.offset * d;
      if constexpr (F == Form::B8) m += 128.0f * d;  // the codes were made signed (code - 128)
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t >= nt) break;
      const int4 av = *reinterpret_cast<const int4*>(aq + t * a.stride + c);
      const float s = as[t * blocks + c / 32];
      const int isum = dot16(wq, av);
      if constexpr (F == Form::I8)
        acc[t] += s * float(isum);
      else
        acc[t] += s * (d * float(isum) + m * float(am[t * halves + c / 16]));
    }
  };
  auto use = [&](int64_t u, const Unit& x) {
    const uint4 wq = x.wq;
    if constexpr (F == Form::N24) {
      const int64_t c = u * 32;
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= nt) break;
        const int4* av = reinterpret_cast<const int4*>(aq + t * a.stride + c);
        acc[t] += as[t * blocks + u] * float(dot_nm24(wq, x.pos, av[0], av[1]));
      }
    } else if constexpr (F == Form::B4) {
      // Bytes 32v + k .. + 15 (k = 0 or 16): columns 64v + k .. in the low nibbles,
      // 64v + 32 + k .. in the high ones.
      const int64_t b = u * 16, c = (b / 32) * 64 + b % 32;
      const uint32_t k = 0x0F0F0F0Fu;
      part(c, make_uint4(wq.x & k, wq.y & k, wq.z & k, wq.w & k), x.d[0], x.m[0]);
      part(c + 32, make_uint4((wq.x >> 4) & k, (wq.y >> 4) & k, (wq.z >> 4) & k, (wq.w >> 4) & k), x.d[1], x.m[1]);
    } else if constexpr (F == Form::B8) {
      const uint32_t k = 0x80808080u;
      part(u * 16, make_uint4(wq.x ^ k, wq.y ^ k, wq.z ^ k, wq.w ^ k), x.d[0], x.m[0]);
    } else {
      part(u * 16, wq, 0, 0);
    }
  };
  constexpr int64_t kStep = L * kInFlight;
  for (int64_t u = lane; u < units; u += kStep) {
    Unit next[kInFlight] = {};
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) load(u + kStep + L * i, next[i]);
#pragma unroll
    for (int i = 0; i < kInFlight; ++i)
      if (u + L * i < units) use(u + L * i, cur[i]);
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) cur[i] = next[i];
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float v = acc[t];
    for (int o = L / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (live && lane == 0 && t < nt) {
      float& out = f.y[wi][(t0 + t) * w.rows + r];
      const float value = v * (w.scales ? w.scales[r] : 1.0f) + (w.bias ? w.bias[r] : 0.0f);
      out = f.accumulate ? out + value : value;
    }
  }
}

template <Form F, int NT>
void launch_nt(const Fused& f, const Int8Acts& a, int64_t n, int lanes, const Stream& s) {
  const dim3 grid(unsigned(f.first_block[f.count]), unsigned((n + NT - 1) / NT));
  const int64_t smem = NT * acts_bytes(a.stride);
  const bool in_smem = smem <= kSmemBytes;
  auto* k = in_smem ? (lanes == 8 ? int8_kernel<F, NT, true, 8> : int8_kernel<F, NT, true, 32>)
                    : (lanes == 8 ? int8_kernel<F, NT, false, 8> : int8_kernel<F, NT, false, 32>);
  launch("matmul_int8", k, grid, kWarps * 32, size_t(in_smem ? smem : 0), s, f, a, n);
}

template <Form F>
void launch_form(const Fused& f, const Int8Acts& a, int64_t n, int lanes, const Stream& s) {
  if (n == 1) return launch_nt<F, 1>(f, a, n, lanes, s);
  if (n <= 4) return launch_nt<F, 4>(f, a, n, lanes, s);
  launch_nt<F, 8>(f, a, n, lanes, s);
}

// Lanes a row: 8 where a row is at most 64 16-byte loads (8 a lane), else a warp.
int lanes_for(const DeviceWeight& w) {
  const int64_t row_len = w.kind == WeightKind::I8 ? w.cols : w.kind == WeightKind::Nm24 ? w.cols / 2 : w.row_bytes;
  return row_len / 16 <= 64 ? 8 : 32;
}

}  // namespace

bool runs_int8(const DeviceWeight& w) {
  if (w.kind == WeightKind::I8) return w.cols % 16 == 0 && w.scales;
  if (w.kind == WeightKind::Nm24) return w.cols % 32 == 0 && w.scales && w.positions;
  return w.kind == WeightKind::Block && !w.lut && w.sub == 32 && (w.bits == 4 || w.bits == 8);
}

void quantize_acts(const float* x, int64_t n, int64_t cols, const Int8Acts& a, const Stream& s) {
  const int64_t warps = n * (a.stride / 32);
  if (warps == 0) return;
  launch("quantize_acts", quantize_kernel, unsigned((warps + 7) / 8), 256, 0, s, x, n, cols, a);
}

void matmul_int8(const DeviceWeight* const* ws, float* const* ys, int count, const Int8Acts& a, int64_t n,
                 bool accumulate, const Stream& s) {
  if (n <= 0 || count <= 0) return;
  Fused f{};
  f.count = count;
  f.accumulate = accumulate;
  const Form form = form_of(*ws[0]);
  // Past 8 tokens the products run on the tensor cores, where they can: weights too
  // large for L2 (and 2:4) streamed through shared memory (matmul-staged.cu), the rest
  // straight from global memory (matmul-mma.cu).
  int64_t bytes = 0;
  for (int i = 0; i < count; ++i) bytes += ws[i]->rows * ws[i]->cols;
  const bool staged =
      n > 8 && runs_staged(*ws[0]) && (form == Form::N24 || bytes >= kStagedBytes);
  const bool mma = !staged && n > 8 && runs_mma(*ws[0]);
  const int lanes = lanes_for(*ws[0]);
  const int64_t rows_per_block = staged ? kStagedRows : mma ? kMmaRows : kWarps * 32 / lanes;
  for (int i = 0; i < count; ++i) {
    f.w[i] = *ws[i];
    f.y[i] = ys[i];
    f.first_block[i + 1] = f.first_block[i] + (ws[i]->rows + rows_per_block - 1) / rows_per_block;
  }
  if (f.first_block[count] == 0) return;
  if (staged) return matmul_staged(f, form, a, n, s);
  if (mma) return matmul_mma(f, form, a, n, s);
  switch (form) {
    case Form::I8: launch_form<Form::I8>(f, a, n, lanes, s); break;
    case Form::B8: launch_form<Form::B8>(f, a, n, lanes, s); break;
    case Form::B4: launch_form<Form::B4>(f, a, n, lanes, s); break;
    case Form::N24: launch_form<Form::N24>(f, a, n, lanes, s); break;
  }
}

}  // namespace upg::cuda
