#pragma once
// Tensor parallelism's split of the weights (docs/ARCHITECTURE.md, "Tensor parallelism"):
// which part of every matrix a rank holds, and the shard of one rank built from the
// whole model's weights at load. Nothing is quantized again: row ranges are views, and
// column ranges copy the stored bytes (dense and GGUF blocks) or codes (UPG layouts,
// format::copy_region).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "model/weights.h"
#include "upg/core/aligned-vector.h"
#include "upg/core/config.h"
#include "upg/format/format.h"
#include "upg/kernels/backend.h"

namespace upg {

// Ranges per rank, as offsets [n_ranks + 1]: rank r holds [x[r], x[r + 1]).
struct ShardPlan {
  int n_ranks = 1;
  std::vector<int> kv_heads;      // KV heads (whole GQA groups: their query heads go along)
  std::vector<int64_t> inter;     // intermediate columns (gate/up rows, down columns)
  std::vector<int64_t> vocab;     // vocabulary rows (embedding, LM head)
};

// The split of cfg over n ranks. KV heads go out as evenly as they can (a rank may get
// none: with 4 ranks and 3 KV heads, one rank's attention contributes zeros);
// intermediate ranges start on the column alignment of every layer's down_proj (and on
// 32 columns, the activations' quantization blocks). Throws upg::Error naming the tensor
// when an o_proj cannot split at its heads' columns (GGUF blocks wider than a group).
ShardPlan plan_shards(const ModelConfig& cfg, const ModelWeights& w, int n);

// Owns what a shard copied.
struct ShardStore {
  std::deque<AlignedVector<std::byte>> bytes;
  std::deque<std::vector<float>> floats;
  std::deque<format::CompressedData> compressed;
  std::deque<format::CompressedMatrix> views;  // of `compressed`
};

struct Shard {
  ModelConfig config;  // the rank's heads, KV heads and intermediate size; vocab_size stays whole
  ModelWeights weights;
  ShardStore store;
  int64_t vocab0 = 0, vocab_rows = 0;  // its vocabulary rows; weights.embed has one more, all zeros
};

std::unique_ptr<Shard> make_shard(const ModelConfig& cfg, const ModelWeights& full, const ShardPlan& plan, int rank);

// One weight's parts. Rows [r0, r0 + n) (and their bias): a view where the layout allows.
LinearWeight linear_rows_of(const LinearWeight& w, int64_t r0, int64_t n, ModelWeights& views);
// Columns [c0, c0 + n), copied; the bias (of whole rows) only when keep_bias, as one
// rank adds it. Throws upg::Error naming the tensor when c0 or n is off column_alignment.
LinearWeight linear_cols_of(const LinearWeight& w, int64_t c0, int64_t n, bool keep_bias, ShardStore& store);
// Rows [r0, r0 + n) and then a row of zeros (an embedding shard: tokens it does not hold
// read the zero row), copied.
LinearWeight rows_with_zero_row(const LinearWeight& w, int64_t r0, int64_t n, ShardStore& store);
// The columns a column range must start on: a GGUF type's block, a UPG layout's groups
// (format::column_alignment), 1 for plain dense weights.
int64_t column_alignment(const LinearWeight& w);

}  // namespace upg
