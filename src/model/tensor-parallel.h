#pragma once
// A model split over ranks (docs/ARCHITECTURE.md, "Tensor parallelism"): one thread,
// backend, shard of the weights (model/shard.h), communicator and ForwardPass per rank.
// run() hands every rank the same Batch and returns rank 0's results; the caller keeps
// its scheduler and everything else on its own thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "model/forward.h"
#include "model/rank-group.h"
#include "model/shard.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/communicator.h"

namespace upg {

struct TensorParallelOptions {
  int ranks = 2;
  std::chrono::milliseconds timeout{300000};  // one run() on every rank
  // Rank r's backend, made on rank r's thread (a GPU backend binds that thread to its device).
  std::function<std::unique_ptr<Backend>(int rank)> make_backend;
  // The communicators of the ranks' backends, in rank order.
  std::function<std::vector<std::unique_ptr<Communicator>>(std::span<Backend* const>)> make_communicators;
  // As ForwardPass's; kv_blocks the same on every rank (the block tables are shared).
  int context_length = 0, max_sequences = 1, max_ubatch = 256;
  DType kv_type = DType::F16;
  int kv_block_size = 16, kv_blocks = 0;
};

class TensorParallel {
 public:
  // Throws upg::Error: a weight that cannot split (model/shard.h), a rank that fails to start.
  TensorParallel(const ModelConfig& cfg, const ModelWeights& full, TensorParallelOptions o);
  ~TensorParallel();
  int ranks() const { return group_.size(); }
  // As ForwardPass::run and greedy, from rank 0. A bad batch throws before any rank runs
  // and leaves the model usable; a failure inside a rank stops them all for good.
  std::span<const float> run(const Batch& b);
  std::span<const int32_t> greedy() const;
  void copy_kv_blocks(std::span<const BlockCopy> copies);
  ForwardPass& lead() { return *ranks_[0]->forward; }
  Backend& lead_backend() { return *ranks_[0]->backend; }

 private:
  struct Rank {
    std::unique_ptr<Shard> shard;
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Communicator> comm;
    std::unique_ptr<ForwardPass> forward;
  };
  ShardPlan plan_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  RankGroup group_;
};

}  // namespace upg
