#pragma once
// Causal attention over the CPU backend's KV cache, with the work split evenly across
// threads whatever the batch: a decode step has one token and a few KV heads, fewer work
// items than a split by heads can balance, so long rows are cut into position chunks
// (flash-decoding) and the chunks merged by their softmax maxima and sums.
#include <cstdint>
#include <vector>

#include "upg/kernels/backend.h"
#include "kernels/cpu/kernels.h"

namespace upg::kernels {

// One layer's KV cache as attention reads it: keys and values head-major
// [n_kv_heads, slots, head_dim], so each head's rows are one sequential stream, of f32,
// f16 bits or int8 (KV = float, uint16_t or int8_t). int8 rows have one scale each,
// [n_kv_heads, slots]; the other types leave the scales null.
template <class KV>
struct KvLayer {
  const KV* k;
  const KV* v;
  const float* k_scales = nullptr;
  const float* v_scales = nullptr;
};

class Attention {
 public:
  explicit Attention(ThreadPool& pool) : pool_(pool) {}
  // q, out: [n_tokens, n_heads, head_dim]. Allocates only when a batch needs more scratch
  // than any before it.
  template <class KV>
  void run(const float* q, const AttentionBatch& b, const KvLayer<KV>& kv, int64_t slots, float* out);
  // Chunks of a fixed length (kFixedChunk) instead of a length fitted to the batch: a
  // token's softmax sums then run in the same order whatever else is in the batch
  // (Backend::set_decode_rows).
  void set_fixed_chunks(bool on) { fixed_chunks_ = on; }
  static constexpr int64_t kFixedChunk = 128;

 private:
  // Positions [p0, p1) of token t's KV head g; `whole` when that is every position it
  // attends to, so the result goes straight to out instead of through a merge.
  struct Item {
    int32_t t, g, p0, p1;
    bool whole;
  };
  template <class KV>
  void run_item(size_t i, const float* q, const AttentionBatch& b, const KvLayer<KV>& kv, int64_t slots, float* out,
                float* scores);
  void merge(const AttentionBatch& b, float* out);

  ThreadPool& pool_;
  std::vector<Item> items_;
  std::vector<float> partial_;  // [items, group, head_dim + 2]: unnormalized output, max, sum
  std::vector<float> scores_;   // [threads, group, longest item]
  int64_t longest_ = 0;
  bool fixed_chunks_ = false;
};

}  // namespace upg::kernels
