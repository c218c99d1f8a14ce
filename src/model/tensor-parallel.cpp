#include "model/tensor-parallel.h"

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg {

TensorParallel::TensorParallel(const ModelConfig& cfg, const ModelWeights& full, TensorParallelOptions o)
    : plan_(plan_shards(cfg, full, o.ranks)), group_(o.ranks, o.timeout) {
  for (int r = 0; r < o.ranks; ++r) ranks_.push_back(std::make_unique<Rank>());
  // Shards and backends on the ranks' own threads, all at once.
  group_.run([&](int r) {
    Rank& k = *ranks_[size_t(r)];
    k.shard = make_shard(cfg, full, plan_, r);
    k.backend = o.make_backend(r);
  });
  std::vector<Backend*> backends;
  for (auto& k : ranks_) backends.push_back(k->backend.get());
  std::vector<std::unique_ptr<Communicator>> comms = o.make_communicators(backends);
  if (comms.size() != ranks_.size())
    throw Error(fmt::format("tensor parallel: {} communicators for {} ranks", comms.size(), ranks_.size()));
  for (size_t r = 0; r < comms.size(); ++r) ranks_[r]->comm = std::move(comms[r]);
  group_.set_abort([this] {
    for (auto& k : ranks_) k->comm->abort();
  });
  group_.run([&](int r) {
    Rank& k = *ranks_[size_t(r)];
    RankContext tp{k.comm.get(), plan_.vocab, k.shard->vocab0, k.shard->vocab_rows};
    k.forward = std::make_unique<ForwardPass>(k.shard->config, k.shard->weights, *k.backend, o.context_length,
                                              o.max_sequences, o.max_ubatch, o.kv_type, o.kv_block_size, o.kv_blocks,
                                              std::move(tp));
  });
}

TensorParallel::~TensorParallel() {
  // Each rank's state goes on its own thread (a GPU backend frees on its device).
  if (group_.failed()) {
    // A rank that never returned from its job still uses its state: it is left to it.
    if (group_.busy())
      for (auto& k : ranks_) (void)k.release();
    return;
  }
  try {
    group_.run([&](int r) { ranks_[size_t(r)].reset(); });
  } catch (...) {
  }
}

std::span<const float> TensorParallel::run(const Batch& b) {
  ranks_[0]->forward->validate(b);
  std::span<const float> logits;
  group_.run([&](int r) {
    const std::span<const float> l = ranks_[size_t(r)]->forward->run(b);
    if (r == 0) logits = l;
  });
  return logits;
}

std::span<const int32_t> TensorParallel::greedy() const { return ranks_[0]->forward->greedy(); }

void TensorParallel::copy_kv_blocks(std::span<const BlockCopy> copies) {
  group_.run([&](int r) { ranks_[size_t(r)]->backend->kv_copy_blocks(copies); });
}

}  // namespace upg
