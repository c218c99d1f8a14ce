// Causal attention over the paged KV cache: one block per (query head, token), its
// warps taking every kWarps-th position of the token's range (its sliding window or
// 0 .. position) through the block table, with an online softmax per warp (running
// maximum, sum and weighted values), merged across warps at the end. Each lane holds
// head_dim / 32 of the query and of the output, and each warp has kInFlight positions'
// loads in flight at once.
//
// Long contexts, few blocks: one block per (head, token) leaves most SMs idle for a
// single sequence (SmolLM2: 9 blocks on 132 SMs) while each block reads thousands of
// cached rows. So a launch of fewer blocks than fill the GPU twice comes as clusters of
// up to 8 blocks along z, and a token whose range holds more than kMinChunk positions
// splits it into that many chunks (up to the cluster's size), one a block; the first
// block of the cluster merges the others' maxima, sums and weighted values from their
// shared memory in rank order (a fixed order: the same bits every run) and writes the
// output. A shorter range is the first block's alone, as without clusters, the others
// leaving at once: the split costs a short context nothing but those idle blocks.
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda-check.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/kv-cache.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quantize.cuh"

namespace upg::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kInFlight = 4;
constexpr int kMaxSplit = 8;     // blocks of a (head, token): a portable cluster
constexpr int kMinChunk = 256;   // positions a block takes, at least, when they split

// PerLane = ceil(head_dim / 32) values of q, and of the output, per lane.
template <bool Half, int PerLane>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(const float* q, KvLayer kv, AttentionArgs a, float* out,
                                                                Int8Acts acts) {
  pdl_wait();
  pdl_trigger();
  const int h = blockIdx.x, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t t = blockIdx.y;
  const int hd = a.head_dim, kv_dim = a.n_kv_heads * hd, group = a.n_heads / a.n_kv_heads, g = h / group;
  const int32_t pos = a.positions[t];
  const int32_t first = a.sliding_window > 0 ? max(0, pos - a.sliding_window + 1) : 0;
  // This block's chunk [lo, hi] of the range: `parts` chunks of the launch's gridDim.z,
  // the same for every block of the cluster (they share t).
  const int32_t len = pos - first + 1, parts = min(int32_t(gridDim.z), (len + kMinChunk - 1) / kMinChunk);
  const int32_t z = int32_t(blockIdx.z), chunk = (len + parts - 1) / parts;
  if (z >= parts && parts == 1) return;  // a short range: the first block's alone
  const int32_t lo = first + z * chunk, hi = min(pos, lo + chunk - 1);  // empty past the range
  const int32_t* table = a.block_ids + a.block_begin[t];
  const float scale = rsqrtf(float(hd));
  float qv[PerLane], acc[PerLane];
#pragma unroll
  for (int i = 0; i < PerLane; ++i) {
    const int e = lane + 32 * i;
    qv[i] = (e < hd ? q[(t * a.n_heads + h) * hd + e] : 0.0f) * scale;
    acc[i] = 0;
  }
  float m = -INFINITY, l = 0;
  // kInFlight positions a warp at a time: their table entries, keys and values are all
  // loaded before the first is used, so a step waits on memory once, not once per
  // position (decode is bound by that latency, not by bytes).
  for (int32_t p0 = lo + warp; p0 <= hi; p0 += kInFlight * kWarps) {
    float kk[kInFlight][PerLane], vv[kInFlight][PerLane];
#pragma unroll
    for (int j = 0; j < kInFlight; ++j) {
      const int32_t p = p0 + j * kWarps;
      const bool ok = p <= hi;
      const int64_t slot = ok ? int64_t(table[p / a.block_size]) * a.block_size + p % a.block_size : 0;
      const int64_t row = slot * kv_dim + int64_t(g) * hd;
#pragma unroll
      for (int i = 0; i < PerLane; ++i) {
        const int e = lane + 32 * i;
        kk[j][i] = ok && e < hd ? kv_at<Half>(kv.k, row + e) : 0.0f;
        vv[j][i] = ok && e < hd ? kv_at<Half>(kv.v, row + e) : 0.0f;
      }
    }
    float sc[kInFlight];
#pragma unroll
    for (int j = 0; j < kInFlight; ++j) {
      sc[j] = 0;
#pragma unroll
      for (int i = 0; i < PerLane; ++i) sc[j] += qv[i] * kk[j][i];
    }
    for (int o = 16; o > 0; o /= 2)
#pragma unroll
      for (int j = 0; j < kInFlight; ++j) sc[j] += __shfl_xor_sync(0xffffffffu, sc[j], o);
#pragma unroll
    for (int j = 0; j < kInFlight; ++j) {
      if (p0 + j * kWarps > hi) break;
      const float m_new = fmaxf(m, sc[j]), corr = __expf(m - m_new), e_s = __expf(sc[j] - m_new);
      l = l * corr + e_s;
#pragma unroll
      for (int i = 0; i < PerLane; ++i) acc[i] = acc[i] * corr + e_s * vv[j][i];
      m = m_new;
    }
  }
  // Merge the warps: each rescales to the largest maximum.
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][PerLane * 32];
  if (lane == 0) s_m[warp] = m, s_l[warp] = l;
#pragma unroll
  for (int i = 0; i < PerLane; ++i) s_acc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float m_all = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, s_m[w]);
  float l_all = 0;
  for (int w = 0; w < kWarps; ++w) l_all += s_m[w] == -INFINITY ? 0.0f : s_l[w] * __expf(s_m[w] - m_all);
  // hd <= 256 = the block's threads: thread e writes element e, so warp j holds the
  // head's columns 32j .. 32j + 31, which it quantizes for the output projection.
  const int e = threadIdx.x;
  float v = 0;
  if (e < hd)
    for (int w = 0; w < kWarps; ++w)
      if (s_m[w] != -INFINITY) v += s_acc[w][e] * __expf(s_m[w] - m_all);
  if (parts > 1) {
    // The cluster's chunks: each block's maximum, sum and weighted values, rescaled by
    // the first block to the largest maximum, added in rank order.
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    __shared__ float s_part[256 + 2];
    if (e < hd) s_part[e] = v;
    if (e == 0) s_part[256] = m_all, s_part[257] = l_all;
    cluster.sync();
    if (cluster.block_rank() == 0) {
      float m_c = -INFINITY;
      for (int r = 0; r < parts; ++r) m_c = fmaxf(m_c, cluster.map_shared_rank(s_part, r)[256]);
      float l_c = 0, v_c = 0;
      for (int r = 0; r < parts; ++r) {
        const float* o = cluster.map_shared_rank(s_part, r);
        if (o[256] == -INFINITY) continue;
        const float f = __expf(o[256] - m_c);
        l_c += o[257] * f;
        if (e < hd) v_c += o[e] * f;
      }
      v = v_c, l_all = l_c;
    }
    cluster.sync();  // every block's shared memory stays until the first has read it
    if (cluster.block_rank() != 0) return;
  }
  if (e < hd) {
    v /= l_all;
    out[(t * a.n_heads + h) * hd + e] = v;
  }
  if (acts.q && warp < hd / 32) quantize32(v, lane, acts, t, (int64_t(h) * hd) / 32 + warp);
}

// Blocks of a (head, token): enough to fill the GPU twice when there are few, up to a
// portable cluster; one (no cluster) when the heads and tokens fill it already.
inline int attention_splits(int64_t blocks) {
  return int(std::clamp<int64_t>(2 * int64_t(multiprocessor_count()) / std::max<int64_t>(blocks, 1), 1, kMaxSplit));
}

template <bool Half>
void launch_half(const float* q, const KvLayer& kv, const AttentionArgs& a, float* out, const Int8Acts& acts,
                 const Stream& s) {
  const unsigned splits = unsigned(attention_splits(int64_t(a.n_heads) * a.n_tokens));
  const dim3 grid(unsigned(a.n_heads), unsigned(a.n_tokens), splits);
  auto* k = a.head_dim <= 64    ? attention_kernel<Half, 2>
            : a.head_dim <= 128 ? attention_kernel<Half, 4>
                                : attention_kernel<Half, 8>;
  launch_clustered("attention", k, grid, dim3(1, 1, splits), dim3(kWarps * 32), 0, s, q, kv, a, out, acts);
}

}  // namespace

void attention(const float* q, const KvLayer& kv, const AttentionArgs& a, float* out, const Int8Acts& acts,
               const Stream& s) {
  if (a.n_tokens <= 0) return;
  if (kv.half)
    launch_half<true>(q, kv, a, out, acts, s);
  else
    launch_half<false>(q, kv, a, out, acts, s);
}

}  // namespace upg::cuda
