// y = x W^T for a batch of tokens on the tensor cores: int8 weights (dense int8 rows, and
// the block forms with 4- or 8-bit codes in 32-column sub-blocks: Q4_0, Q4_1, Q8_0, Q4_K,
// UPG int4) times the int8 activations the quantizer made, with mma.sync m16n8k32
// (s8 x s8 -> s32), one instruction per 16 rows, 8 tokens and one 32-column group.
//
// Why: the GEMV kernel (matmul-int8.cu) does a lane's dp4a per token, 8 tokens a block;
// a step of 128 sequences then spent 0.25 ms a layer of SmolLM2 in its products (ncu on
// an H100), bound by instructions, not bytes. An mma does 4,096 multiply-adds where a
// warp's dp4a does 128.
//
// The activations carry a scale per token and 32 columns, so each 32-column group's
// integer sums are scaled into fp32 before the next: the mma's exact int32 sums make the
// same integers as the GEMV's dp4a, and the result differs from it only in the order of
// the fp32 additions. Block forms add d * sum(code * a) + m * sum(a) per group as the
// GEMV does (sum(a) from the quantizer's sums per 16 columns).
//
// Layout: a warp computes 16 rows x 32 tokens (four 16x8 tiles) over a quarter of the
// columns; a block of 8 warps 32 rows; the grid covers (weights' rows / 32, tokens / 32). Fragments come straight from
// global memory: a lane's A registers are 4-byte runs of two rows (32 contiguous bytes a
// row across its 4 lanes), its B registers 4-byte runs of one token's activations; the
// batch's activations are read by every block of its token tile and stay in L1/L2.
// Hand-written: cuBLAS's int8 GEMM has no per-group scales, and CUTLASS is not here.
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/matmul-int8.cuh"
#include "kernels/cuda/mma.cuh"

namespace upg::cuda {

namespace {

constexpr int kSplit = 4;                         // warps that split a tile's columns
constexpr int kWarps = int(kMmaRows / 16) * kSplit;  // 8: two 16-row tiles, four splits each
constexpr int kTiles = 4;                          // 8-token tiles a warp covers
constexpr int kTokens = 8 * kTiles;

__device__ inline uint32_t load4(const uint8_t* p) { return __ldg(reinterpret_cast<const uint32_t*>(p)); }

// The A registers of group grp for rows p0 (ok0) and p1 (ok1): PTX's m16n8k32 fragments,
// lane = 4 g + t, rows g and g + 8 at columns 4t .. 4t + 3 and 16 + 4t .. of the group.
template <Form F>
__device__ inline void load_a(uint32_t (&A)[4], const uint8_t* p0, const uint8_t* p1, bool ok0, bool ok1,
                              int64_t grp, int t) {
  if constexpr (F == Form::B4) {
    // Byte 32v + k holds columns 64v + k (low nibble) and 64v + 32 + k (high).
    const int64_t off = (grp / 2) * 32 + 4 * t;
    const int shift = grp % 2 ? 4 : 0;
    const uint32_t m = 0x0F0F0F0Fu;
    A[0] = ok0 ? (load4(p0 + off) >> shift) & m : 0u;
    A[1] = ok1 ? (load4(p1 + off) >> shift) & m : 0u;
    A[2] = ok0 ? (load4(p0 + off + 16) >> shift) & m : 0u;
    A[3] = ok1 ? (load4(p1 + off + 16) >> shift) & m : 0u;
  } else {
    const int64_t off = grp * 32 + 4 * t;
    // 8-bit block codes are stored as code + 128: made signed here, m makes up for it.
    const uint32_t flip = F == Form::B8 ? 0x80808080u : 0u;
    A[0] = ok0 ? load4(p0 + off) ^ flip : 0u;
    A[1] = ok1 ? load4(p1 + off) ^ flip : 0u;
    A[2] = ok0 ? load4(p0 + off + 16) ^ flip : 0u;
    A[3] = ok1 ? load4(p1 + off + 16) ^ flip : 0u;
  }
}

// The B registers of group grp: token g of each tile at the same columns.
__device__ inline void load_b(uint32_t (&B)[kTiles][2], const int8_t* const (&bq)[kTiles], int64_t grp, int t) {
#pragma unroll
  for (int j = 0; j < kTiles; ++j) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(bq[j]) + grp * 32 + 4 * t;
    B[j][0] = bq[j] ? load4(b) : 0u;
    B[j][1] = bq[j] ? load4(b + 16) : 0u;
  }
}

// A block: kMTiles row tiles of 16 x kSplit warps, which split the 32-column groups
// between them (warp k takes groups k, k + kSplit, ...) and add their sums in a fixed
// order at the end: a step of 32 sequences through a 576 x 1536 matrix otherwise left
// 36 warps each a chain of 48 dependent loads (63 us where the GEMV took 42). Each warp
// loads the next group's fragments before the current one's mma.
template <Form F>
__global__ void __launch_bounds__(kWarps * 32) mma_kernel(Fused f, Int8Acts a, int64_t n) {
  int wi = 0;
  while (wi + 1 < f.count && int64_t(blockIdx.x) >= f.first_block[wi + 1]) ++wi;
  const DeviceWeight& w = f.w[wi];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int tile = warp / kSplit, split = warp % kSplit;
  const int64_t r0 = (int64_t(blockIdx.x) - f.first_block[wi]) * kMmaRows + tile * 16 + g, r1 = r0 + 8;
  const bool ok0 = r0 < w.rows, ok1 = r1 < w.rows;
  const int64_t row_len = F == Form::I8 ? w.cols : w.row_bytes;
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const uint8_t* p0 = base + (ok0 ? r0 : 0) * row_len;
  const uint8_t* p1 = base + (ok1 ? r1 : 0) * row_len;
  // 32-column groups: the I8 row's (cols % 32 == 0, runs_mma), the block form's sub-blocks.
  const int64_t groups = F == Form::I8 ? w.cols / 32 : w.subs;
  const int64_t blocks = a.stride / 32, halves = a.stride / 16;
  uint32_t A[4] = {0, 0, 0, 0};
  if (split < groups) load_a<F>(A, p0, p1, ok0, ok1, split, t);  // weights: before the wait
  pdl_wait();
  pdl_trigger();
  const int64_t tok0 = int64_t(blockIdx.y) * kTokens;
  // This lane's B token of each tile (g), and the two result tokens (2t, 2t + 1).
  const int8_t* bq[kTiles];
  int64_t tc[kTiles][2];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) {
    const int64_t tb = tok0 + 8 * j + g;
    bq[j] = tb < n ? a.q + tb * a.stride : nullptr;
    tc[j][0] = tok0 + 8 * j + 2 * t;
    tc[j][1] = tc[j][0] + 1;
  }
  uint32_t B[kTiles][2] = {};
  if (split < groups) load_b(B, bq, split, t);
  float acc[kTiles][4] = {};
  for (int64_t grp = split; grp < groups; grp += kSplit) {
    uint32_t An[4] = {0, 0, 0, 0}, Bn[kTiles][2] = {};
    if (grp + kSplit < groups) {
      load_a<F>(An, p0, p1, ok0, ok1, grp + kSplit, t);
      load_b(Bn, bq, grp + kSplit, t);
    }
    float d0 = 1, d1 = 1, m0 = 0, m1 = 0;
    if constexpr (F != Form::I8) {
      const int64_t s0 = (ok0 ? r0 : 0) * w.subs + grp, s1 = (ok1 ? r1 : 0) * w.subs + grp;
      d0 = half_bits_to_float(__ldg(w.d + s0));
      d1 = half_bits_to_float(__ldg(w.d + s1));
      m0 = w.has_min ? half_bits_to_float(__ldg(w.m + s0)) : w.offset * d0;
      m1 = w.has_min ? half_bits_to_float(__ldg(w.m + s1)) : w.offset * d1;
      if constexpr (F == Form::B8) m0 += 128.0f * d0, m1 += 128.0f * d1;
    }
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      int c[4] = {kSumBias, kSumBias, kSumBias, kSumBias};
      mma_s8(c, A, B[j][0], B[j][1]);
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const int64_t tok = tc[j][k];
        if (tok >= n) continue;
        const float sa = __ldg(a.scales + tok * blocks + grp);
        if constexpr (F == Form::I8) {
          acc[j][k] += sa * biased_sum(c[k]);
          acc[j][2 + k] += sa * biased_sum(c[2 + k]);
        } else {
          const float sum = float(__ldg(a.sums + tok * halves + 2 * grp) + __ldg(a.sums + tok * halves + 2 * grp + 1));
          acc[j][k] += sa * (d0 * biased_sum(c[k]) + m0 * sum);
          acc[j][2 + k] += sa * (d1 * biased_sum(c[2 + k]) + m1 * sum);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) A[i] = An[i];
#pragma unroll
    for (int j = 0; j < kTiles; ++j) B[j][0] = Bn[j][0], B[j][1] = Bn[j][1];
  }
  // The splits' sums, added in split order by the tile's first warp.
  __shared__ float part[kWarps][kTiles * 4][32];
#pragma unroll
  for (int j = 0; j < kTiles; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) part[warp][j * 4 + i][lane] = acc[j][i];
  __syncthreads();
  if (split != 0) return;
#pragma unroll
  for (int j = 0; j < kTiles; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float v = part[warp][j * 4 + i][lane];
      for (int k = 1; k < kSplit; ++k) v += part[warp + k][j * 4 + i][lane];
      const int64_t r = i < 2 ? r0 : r1, tok = tc[j][i % 2];
      if (!(i < 2 ? ok0 : ok1) || tok >= n) continue;
      float& out = f.y[wi][tok * w.rows + r];
      const float value = v * (w.scales ? w.scales[r] : 1.0f) + (w.bias ? w.bias[r] : 0.0f);
      out = f.accumulate ? out + value : value;
    }
}

}  // namespace

bool runs_mma(const DeviceWeight& w) {
  if (w.kind == WeightKind::I8) return w.cols % 32 == 0 && w.scales;
  return w.kind == WeightKind::Block && !w.lut && w.sub == 32 && (w.bits == 4 || w.bits == 8) &&
         (w.bits == 8 || w.subs % 2 == 0);
}

void matmul_mma(const Fused& f, Form form, const Int8Acts& a, int64_t n, const Stream& s) {
  const dim3 grid(unsigned(f.first_block[f.count]), unsigned((n + kTokens - 1) / kTokens));
  const dim3 block(kWarps * 32);
  switch (form) {
    case Form::I8: return launch("matmul_mma", mma_kernel<Form::I8>, grid, block, 0, s, f, a, n);
    case Form::B8: return launch("matmul_mma", mma_kernel<Form::B8>, grid, block, 0, s, f, a, n);
    case Form::B4: return launch("matmul_mma", mma_kernel<Form::B4>, grid, block, 0, s, f, a, n);
    case Form::N24: break;  // runs_mma refuses it
  }
}

}  // namespace upg::cuda
