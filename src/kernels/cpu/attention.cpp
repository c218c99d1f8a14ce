#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

namespace upg::kernels {

namespace {

// First position token t attends to.
int32_t first_position(const AttentionBatch& b, size_t t) {
  const int32_t pos = b.positions[t];
  return b.sliding_window > 0 ? std::max(0, pos - b.sliding_window + 1) : 0;
}

// Calls fn(p, slot, rows) for positions [p0, p1) of token t, cut where its block table
// is not contiguous: positions p .. p + rows are slots slot .. slot + rows. A sequence
// whose blocks follow each other is one run, which the row kernels take in one call
// (they group rows in fours from a run's start, so fewer cuts also round as before).
template <class Fn>
void for_each_run(const AttentionBatch& b, size_t t, int64_t p0, int64_t p1, Fn&& fn) {
  const int64_t B = b.block_size;
  const int32_t* table = b.block_ids.data() + b.block_begin[t];
  for (int64_t p = p0; p < p1;) {
    int64_t i = p / B;
    while ((i + 1) * B < p1 && table[i + 1] == table[i] + 1) ++i;
    const int64_t end = std::min(p1, (i + 1) * B);
    fn(p, int64_t(table[p / B]) * B + p % B, end - p);
    p = end;
  }
}

}  // namespace

template <class KV>
void Attention::run(const float* q, const AttentionBatch& b, const KvLayer<KV>& kv, int64_t slots, float* out) {
  const size_t n_tokens = b.positions.size();
  const int group = b.n_heads / b.n_kv_heads, threads = pool_.size();
  int64_t total = 0;
  for (size_t t = 0; t < n_tokens; ++t) total += b.positions[t] - first_position(b, t) + 1;
  total *= b.n_kv_heads;
  // Chunks only when (token, head) pairs are too few to spread: eight items per thread
  // keep the slowest thread within an eighth of the rest, and 32 positions keep a
  // chunk's fixed cost (its merge) small.
  const int64_t pairs = int64_t(n_tokens) * b.n_kv_heads;
  const int64_t chunk = fixed_chunks_         ? kFixedChunk
                        : pairs >= 8 * threads ? INT32_MAX
                                               : std::max<int64_t>(32, (total + 8 * threads - 1) / (8 * threads));
  // Buffers only grow, and start large enough that a decode step never grows them: one
  // token's chunks number at most 8 per thread plus one per kv head, and hold under
  // 4096 positions up to a context of about 20000 (a chunk is an eighth of a thread's
  // share of the positions).
  const size_t max_decode_items = size_t(8 * threads + b.n_kv_heads);
  if (items_.capacity() < max_decode_items) items_.reserve(max_decode_items);
  items_.clear();
  longest_ = 0;
  for (size_t t = 0; t < n_tokens; ++t)
    for (int g = 0; g < b.n_kv_heads; ++g) {
      const int32_t begin = first_position(b, t), end = b.positions[t] + 1;
      for (int64_t p0 = begin; p0 < end; p0 += chunk) {
        const int32_t p1 = int32_t(std::min<int64_t>(end, p0 + chunk));
        items_.push_back({int32_t(t), g, int32_t(p0), p1, p0 == begin && p1 == end});
        longest_ = std::max<int64_t>(longest_, p1 - p0);
      }
    }
  const size_t part = size_t(group) * size_t(b.head_dim + 2);
  if (partial_.size() < items_.size() * part) partial_.resize(std::max(items_.capacity(), items_.size()) * part);
  const size_t per_thread = size_t(group) * size_t(longest_);
  if (scores_.size() < size_t(threads) * per_thread)
    scores_.resize(size_t(threads) * size_t(group) * size_t(std::max<int64_t>(longest_, 4096)));
  // Thread i takes items i, i + threads, ...: neighbouring items cost about the same
  // (chunks of one row, or causal rows one position apart), so every thread gets a
  // fair share without a cost model.
  pool_.parallel_for(threads, [&](int64_t i0, int64_t i1, int thread) {
    float* scores = scores_.data() + size_t(thread) * per_thread;
    for (int64_t s = i0; s < i1; ++s)
      for (size_t i = size_t(s); i < items_.size(); i += size_t(threads)) run_item(i, q, b, kv, slots, out, scores);
  });
  merge(b, out);
}

template <class KV>
void Attention::run_item(size_t i, const float* q, const AttentionBatch& b, const KvLayer<KV>& kv, int64_t slots,
                         float* out, float* scores) {
  const Item& it = items_[i];
  const int group = b.n_heads / b.n_kv_heads, hd = b.head_dim;
  const int64_t n = it.p1 - it.p0;
  const size_t head_rows = size_t(it.g) * size_t(slots);  // the head's first cache row
  const float scale = 1.0f / std::sqrt(float(hd));
  // The group's query heads are consecutive: their queries, and their outputs in `out`
  // or in partial_, are one stride apart.
  const size_t head0 = size_t(it.t) * size_t(b.n_heads) + size_t(it.g * group);
  const float* qg = q + head0 * size_t(hd);
  for_each_run(b, size_t(it.t), it.p0, it.p1, [&](int64_t p, int64_t slot, int64_t rows) {
    const size_t first = head_rows + size_t(slot), row0 = first * size_t(hd);
    float* sc = scores + (p - it.p0);
    if constexpr (std::is_same_v<KV, int8_t>)
      dot_rows(qg, group, kv.k + row0, kv.k_scales + first, hd, rows, hd, sc, n);
    else
      dot_rows(qg, group, kv.k + row0, hd, rows, hd, sc, n);
  });
  float* og = it.whole ? out + head0 * size_t(hd) : partial_.data() + i * size_t(group) * size_t(hd + 2);
  const int64_t os = it.whole ? hd : hd + 2;
  for (int j = 0; j < group; ++j) {
    float* sc = scores + size_t(j) * size_t(n);
    float* o = og + j * os;
    float max = 0;
    const float sum = exp_scaled(sc, n, scale, &max);
    std::memset(o, 0, size_t(hd) * sizeof(float));
    if (it.whole) {
      // Normalized before the sum over V: the output needs no pass of its own.
      const float inv = 1.0f / sum;
      for (int64_t p = 0; p < n; ++p) sc[p] *= inv;
    } else {
      o[hd] = max;
      o[hd + 1] = sum;
    }
  }
  // Runs add into og one after another, so the sum over positions keeps its order.
  for_each_run(b, size_t(it.t), it.p0, it.p1, [&](int64_t p, int64_t slot, int64_t rows) {
    const size_t first = head_rows + size_t(slot), row0 = first * size_t(hd);
    const float* sc = scores + (p - it.p0);
    if constexpr (std::is_same_v<KV, int8_t>)
      axpy_rows(sc, n, group, kv.v + row0, kv.v_scales + first, hd, rows, hd, og, os);
    else
      axpy_rows(sc, n, group, kv.v + row0, hd, rows, hd, og, os);
  });
}

// Combines the chunks of each split row: every chunk's output and sum were taken
// relative to its own maximum, so each is rescaled by exp(its max - the row's max).
void Attention::merge(const AttentionBatch& b, float* out) {
  const int group = b.n_heads / b.n_kv_heads, hd = b.head_dim;
  for (size_t i = 0; i < items_.size();) {
    size_t end = i + 1;
    while (end < items_.size() && !items_[end].whole && items_[end].t == items_[i].t && items_[end].g == items_[i].g &&
           items_[end].p0 > items_[i].p0)
      ++end;
    if (items_[i].whole) {
      i = end;
      continue;
    }
    for (int j = 0; j < group; ++j) {
      auto part = [&](size_t c) { return partial_.data() + (c * size_t(group) + size_t(j)) * size_t(hd + 2); };
      float max = -INFINITY;
      for (size_t c = i; c < end; ++c) max = std::max(max, part(c)[hd]);
      float* o = out + (size_t(items_[i].t) * size_t(b.n_heads) + size_t(items_[i].g * group + j)) * size_t(hd);
      std::memset(o, 0, size_t(hd) * sizeof(float));
      float sum = 0;
      for (size_t c = i; c < end; ++c) {
        const float w = std::exp(part(c)[hd] - max);
        sum += w * part(c)[hd + 1];
        axpy(w, part(c), o, hd);
      }
      for (int d = 0; d < hd; ++d) o[d] /= sum;
    }
    i = end;
  }
}

template void Attention::run(const float*, const AttentionBatch&, const KvLayer<float>&, int64_t, float*);
template void Attention::run(const float*, const AttentionBatch&, const KvLayer<uint16_t>&, int64_t, float*);
template void Attention::run(const float*, const AttentionBatch&, const KvLayer<int8_t>&, int64_t, float*);

}  // namespace upg::kernels
