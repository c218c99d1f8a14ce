// y = x W^T for a batch of tokens on the tensor cores, for weights too large to stay in
// L2: dense int8 rows (and MdCSR int8, which runs as them) and UPG 2:4 int8 as the file
// stores it, times the quantizer's int8 activations, mma.sync m16n8k32 (s8 x s8 -> s32).
//
// Why not matmul-mma.cu's kernel: it reads each lane's fragments as 4-byte loads straight
// from global memory, one 32-column group ahead. SmolLM2's matrices sit in L2 and that is
// enough; a Phi-4 layer at 32 tokens took over 4x its one-token time (BENCHMARKS.md,
// fourth increment), bound by the few bytes each warp keeps in flight. Here a block
// streams 64 rows x 128 columns of weights (with the matching 32 tokens x 128 columns of
// activations and their scales) a stage through shared memory with cp.async, kStages
// stages deep, so a block keeps kStages - 1 stages (40 KB of weights at int8) in flight
// while the tensor cores work on the oldest.
//
// Layout: a block covers 64 rows x 32 tokens; its 8 warps are 2 halves of 32 rows x 4
// splits, split s taking 32-column group s of every 128-column stage. A warp holds 2 x 4
// m16n8 tiles (32 rows x 32 tokens); its fragments come from shared memory through
// ldmatrix (dense rows; rows padded to 144 bytes so the 8 rows of one ldmatrix phase hit
// 32 different banks). 2:4 rows stay compressed in shared memory (16 kept values and 4
// position bytes per 32 columns: 0.625 bytes a weight cross from HBM) and each lane builds
// its own A registers: one register is one group of 4 columns, 2 kept values placed at
// their 2 positions (a validated file never repeats a position, so an OR places both).
//
// Sums: the mma's exact int32 sums of a group times the token's activation scale, added
// in fp32 group after group per warp, then the 4 splits added in split order: a fixed
// order, so results do not depend on timing; they differ from the GEMV's (and the CPU's)
// only in the order of the fp32 additions.
//
// Split-K: a launch of fewer blocks than the GPU holds at once (Phi-4's o and down: 80
// blocks of 64 rows at 32 tokens, on 132 SMs that hold 2 each) leaves SMs idle while
// each block streams a long row. Such a launch divides the stages into gridDim.z equal
// column ranges, one block each, the blocks of a tile in one thread-block cluster; the
// first block of the cluster adds the others' sums from their shared memory in rank
// order (a fixed order again) and writes the tile. No workspace, no second launch.
// Hand-written: cuBLAS's int8 GEMM has no per-group activation scales and no 2:4 layout
// of this file format, and CUTLASS is not here.
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/matmul-int8.cuh"
#include "kernels/cuda/mma.cuh"

namespace upg::cuda {

namespace {

constexpr int kSplit = 4;                    // warps that split a stage's 4 groups
constexpr int kHalves = int(kStagedRows / 32);  // 2: warps of 32 rows each
constexpr int kWarps = kHalves * kSplit;     // 8
constexpr int kThreads = kWarps * 32;
constexpr int kTokens = 32;
constexpr int kStageCols = 32 * kSplit;      // 128
constexpr int kStages = 6;
constexpr int kPitch = kStageCols + 16;      // dense rows and activations in shared memory
constexpr int kNmPitch = kStageCols / 2 + 16;  // 2:4 kept values: 64 bytes a row, padded
constexpr int kMaxClusterSplit = 4;            // split-K blocks of a tile (a cluster)
constexpr int kMinSplitStages = 8;             // stages each of them streams, at least

// Bytes of one stage in shared memory: the weight part (dense int8 rows, or 2:4 kept
// values and positions), the activations [32 tokens][128 columns], the scales [4 groups][32 tokens].
template <Form F>
__host__ __device__ constexpr int weight_stage_bytes() {
  return F == Form::I8 ? int(kStagedRows) * kPitch : int(kStagedRows) * (kNmPitch + kStageCols / 8);
}
template <Form F>
__host__ __device__ constexpr int stage_bytes() {
  return weight_stage_bytes<F>() + kTokens * kPitch + kSplit * kTokens * 4;
}

__device__ inline uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// Copies 16 (4) bytes to shared memory, or zeros when !ok (src then is not read).
__device__ inline void copy16(void* dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0));
}
__device__ inline void copy4(void* dst, const void* src, bool ok) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 4 : 0));
}
__device__ inline void commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ inline void wait_groups() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ inline void ldmatrix4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// 4 dense columns from 2 kept values (v: low byte the first) and their positions (the
// low 4 bits of nib: 2 bits each, the first value's low).
__device__ inline uint32_t expand24(uint32_t v, uint32_t nib) {
  return ((v & 0xFFu) << (8 * (nib & 3u))) | ((v >> 8) << (8 * ((nib >> 2) & 3u)));
}

template <Form F>
__global__ void __launch_bounds__(kThreads) staged_kernel(Fused f, Int8Acts a, int64_t n) {
  extern __shared__ __align__(16) uint8_t smem[];
  int wi = 0;
  while (wi + 1 < f.count && int64_t(blockIdx.x) >= f.first_block[wi + 1]) ++wi;
  const DeviceWeight& w = f.w[wi];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int half = warp / kSplit, split = warp % kSplit;
  const int64_t row0 = (int64_t(blockIdx.x) - f.first_block[wi]) * kStagedRows;
  const int64_t tok0 = int64_t(blockIdx.y) * kTokens;
  const int64_t groups = w.cols / 32, stages = (groups + kSplit - 1) / kSplit;
  // This block's share of the stages (split-K: blockIdx.z of gridDim.z).
  const int64_t st0 = stages * blockIdx.z / gridDim.z, mine = stages * (blockIdx.z + 1) / gridDim.z - st0;
  const int64_t blocks = a.stride / 32;
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);

  // What this thread copies each stage, as pointers it advances by a stage's columns:
  // dense rows as 16-byte pieces (rows p / 8 and 32 + p / 8, bytes 16 (p % 8)), 2:4 as
  // its kept values (row p / 4, the 16 of columns 32 (p % 4) ..) and their position word;
  // the activations of token p / 8 (16 bytes), the scale of token p % 32, group p / 32.
  // Rows past w.rows, tokens past n and columns past w.cols are zeros.
  const int wr = F == Form::I8 ? tid / 8 : tid / 4, wc = F == Form::I8 ? 16 * (tid % 8) : 32 * (tid % 4);
  const bool wok0 = row0 + wr < w.rows, wok1 = row0 + wr + 32 < w.rows;
  const uint8_t* gw0 = F == Form::I8 ? wdata + (wok0 ? (row0 + wr) * w.cols + wc : 0)
                                     : wdata + (wok0 ? (row0 + wr) * (w.cols / 2) + wc / 2 : 0);
  const uint8_t* gw1 = F == Form::I8 ? wdata + (wok1 ? (row0 + wr + 32) * w.cols + wc : 0)
                                     : w.positions + (wok0 ? (row0 + wr) * (w.cols / 8) + wc / 8 : 0);
  const int xt = tid / 8, xc = 16 * (tid % 8), st_ = tid % kTokens, sg = tid / kTokens;
  const bool xok = tok0 + xt < n, sok = tid < kSplit * kTokens && tok0 + st_ < n;
  const int8_t* gx = a.q + (xok ? (tok0 + xt) * a.stride + xc : 0);
  const float* gs = a.scales + (sok ? (tok0 + st_) * blocks + sg : 0);
  auto load_w = [&](int64_t st, int slot) {
    uint8_t* s = smem + slot * stage_bytes<F>();
    const int64_t c0 = st * kStageCols;
    const bool cok = c0 + wc < w.cols;
    if constexpr (F == Form::I8) {
      copy16(s + wr * kPitch + wc, gw0 + c0, wok0 && cok);
      copy16(s + (wr + 32) * kPitch + wc, gw1 + c0, wok1 && cok);
    } else {
      copy16(s + wr * kNmPitch + wc / 2, gw0 + c0 / 2, wok0 && cok);
      copy4(s + kStagedRows * kNmPitch + wr * 16 + wc / 8, gw1 + c0 / 8, wok0 && cok);
    }
  };
  auto load_x = [&](int64_t st, int slot) {
    uint8_t* s = smem + slot * stage_bytes<F>() + weight_stage_bytes<F>();
    const int64_t c0 = st * kStageCols;
    copy16(s + xt * kPitch + xc, gx + c0, xok && c0 + xc < w.cols);
    if (tid < kSplit * kTokens)
      copy4(reinterpret_cast<float*>(s + kTokens * kPitch) + sg * kTokens + st_, gs + st * kSplit,
            sok && st * kSplit + sg < groups);
  };

  // Weights first: no kernel writes them, so their loads overlap the kernel before.
  // Stage st0 + i goes to slot i % kStages.
  for (int i = 0; i < kStages - 1; ++i)
    if (i < mine) load_w(st0 + i, i);
  pdl_wait();
  pdl_trigger();
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < mine) load_x(st0 + i, i);
    commit();
  }

  float acc[2][4][4] = {};
  for (int64_t i = 0; i < mine; ++i) {
    wait_groups<kStages - 2>();
    __syncthreads();  // stage i landed for every thread; slot (i - 1) % kStages is free
    const int64_t next = i + kStages - 1;
    if (next < mine) {
      load_w(st0 + next, int(next % kStages));
      load_x(st0 + next, int(next % kStages));
    }
    commit();

    const uint8_t* s = smem + int(i % kStages) * stage_bytes<F>();
    const uint8_t* sx = s + weight_stage_bytes<F>();
    const float* sc = reinterpret_cast<const float*>(sx + kTokens * kPitch) + split * kTokens;
    // B: tokens 8j + g of tile j at this split's 32 columns; one ldmatrix.x4 gives 2 tiles.
    uint32_t b[4][2];
#pragma unroll
    for (int jp = 0; jp < 2; ++jp) {
      uint32_t r[4];
      ldmatrix4(r, sx + (16 * jp + 8 * (lane / 16) + lane % 8) * kPitch + 32 * split + 16 * ((lane / 8) % 2));
      b[2 * jp][0] = r[0], b[2 * jp][1] = r[1], b[2 * jp + 1][0] = r[2], b[2 * jp + 1][1] = r[3];
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      const int rt = 32 * half + 16 * mt;  // the m tile's first row in the block
      uint32_t A[4];
      if constexpr (F == Form::I8) {
        ldmatrix4(A, s + (rt + lane % 8 + 8 * ((lane / 8) % 2)) * kPitch + 32 * split + 16 * (lane / 16));
      } else {
        const uint8_t* pos = s + kStagedRows * kNmPitch;
#pragma unroll
        for (int h = 0; h < 2; ++h) {  // rows g and g + 8
          const int r = rt + g + 8 * h;
          const uint8_t* v = s + r * kNmPitch + 16 * split;
          const uint32_t p = *reinterpret_cast<const uint32_t*>(pos + r * 16 + 4 * split);
          // Columns 4t .. 4t + 3 (values 2t, 2t + 1) and 16 + 4t .. (values 8 + 2t, ..).
          A[h] = expand24(*reinterpret_cast<const uint16_t*>(v + 2 * t), p >> (4 * t));
          A[2 + h] = expand24(*reinterpret_cast<const uint16_t*>(v + 8 + 2 * t), p >> (16 + 4 * t));
        }
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        int c[4] = {kSumBias, kSumBias, kSumBias, kSumBias};
        mma_s8(c, A, b[j][0], b[j][1]);
        const float2 sa = *reinterpret_cast<const float2*>(sc + 8 * j + 2 * t);
        acc[mt][j][0] += sa.x * biased_sum(c[0]);
        acc[mt][j][1] += sa.y * biased_sum(c[1]);
        acc[mt][j][2] += sa.x * biased_sum(c[2]);
        acc[mt][j][3] += sa.y * biased_sum(c[3]);
      }
    }
  }
  wait_groups<0>();
  __syncthreads();

  // The splits' sums, added in split order by each half's first warp. Value v of a warp
  // is acc[v / 16][(v / 4) % 4][v % 4]: m tile, token tile, fragment element.
  float* part = reinterpret_cast<float*>(smem);  // [warp][32 values][32 lanes]
  const float* flat = &acc[0][0][0];
#pragma unroll
  for (int v = 0; v < 32; ++v) part[(warp * 32 + v) * 32 + lane] = flat[v];
  __syncthreads();
  float sum[32];
#pragma unroll
  for (int v = 0; v < 32; ++v) {
    sum[v] = 0;
    if (split == 0)
#pragma unroll
      for (int k = 0; k < kSplit; ++k) sum[v] += part[((warp + k) * 32 + v) * 32 + lane];
  }
  if (gridDim.z > 1) {
    // Split-K: every block of the cluster leaves its sums beside `part`; rank 0 adds the
    // others' in rank order. Every thread takes both cluster barriers (the second keeps
    // each block's shared memory alive until rank 0 has read it).
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    float* own = part + kWarps * 32 * 32;  // [half][32 values][32 lanes]
    if (split == 0)
#pragma unroll
      for (int v = 0; v < 32; ++v) own[(half * 32 + v) * 32 + lane] = sum[v];
    cluster.sync();
    const unsigned rank = cluster.block_rank();
    if (rank == 0 && split == 0)
      for (unsigned r = 1; r < cluster.num_blocks(); ++r) {
        const float* other = cluster.map_shared_rank(own, r);
#pragma unroll
        for (int v = 0; v < 32; ++v) sum[v] += other[(half * 32 + v) * 32 + lane];
      }
    cluster.sync();
    if (rank != 0) return;
  }
  if (split != 0) return;
#pragma unroll
  for (int v = 0; v < 32; ++v) {
    const int mt = v / 16, j = (v / 4) % 4, i = v % 4;
    const int64_t r = row0 + 32 * half + 16 * mt + g + 8 * (i / 2), tok = tok0 + 8 * j + 2 * t + i % 2;
    if (r >= w.rows || tok >= n) continue;
    float& out = f.y[wi][tok * w.rows + r];
    const float value = sum[v] * w.scales[r] + (w.bias ? w.bias[r] : 0.0f);
    out = f.accumulate ? out + value : value;
  }
}

// Split-K blocks for a launch of `blocks` tiles over `stages` stages: enough to fill the GPU
// once (every SM holds `resident` blocks of the kernel), each streaming kMinSplitStages or more.
inline unsigned split_k(int64_t blocks, int64_t stages, int resident) {
  const int64_t fill = int64_t(multiprocessor_count()) * resident / blocks, most = stages / kMinSplitStages;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>({fill, most, kMaxClusterSplit})));
}

template <Form F>
void launch_staged(const Fused& f, const Int8Acts& a, int64_t n, const Stream& s) {
  constexpr int smem = kStages * stage_bytes<F>();
  static_assert(smem >= (kWarps + kHalves) * 32 * 32 * 4, "the sums (the splits', the cluster's) reuse the stages' memory");
  // Past 48 KB a kernel must ask for its shared memory, once; then how many blocks an SM holds.
  static const int resident = [] {
    UPG_CUDA_CHECK(cudaFuncSetAttribute(staged_kernel<F>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    int blocks = 0;
    UPG_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, staged_kernel<F>, kThreads, smem));
    return std::max(blocks, 1);
  }();
  const unsigned tiles = unsigned(f.first_block[f.count]), token_tiles = unsigned((n + kTokens - 1) / kTokens);
  const unsigned splits = split_k(int64_t(tiles) * token_tiles, (f.w[0].cols / 32 + kSplit - 1) / kSplit, resident);
  launch_clustered("matmul_staged", staged_kernel<F>, dim3(tiles, token_tiles, splits), dim3(1, 1, splits),
                   dim3(kThreads), size_t(smem), s, f, a, n);
}

}  // namespace

bool runs_staged(const DeviceWeight& w) {
  if (w.kind == WeightKind::I8) return w.cols % 32 == 0 && w.scales;
  return w.kind == WeightKind::Nm24 && w.cols % 32 == 0 && w.scales && w.positions;
}

void matmul_staged(const Fused& f, Form form, const Int8Acts& a, int64_t n, const Stream& s) {
  if (form == Form::N24) return launch_staged<Form::N24>(f, a, n, s);
  launch_staged<Form::I8>(f, a, n, s);  // runs_staged takes no other form
}

}  // namespace upg::cuda
