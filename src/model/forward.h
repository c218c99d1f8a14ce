#pragma once
// The forward pass over a Batch, expressed in Backend ops so CPU and CUDA share it.
#include <initializer_list>
#include <span>
#include <utility>
#include <vector>

#include "model/rope.h"
#include "model/weights.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/communicator.h"
#include "upg/model/batch.h"

namespace upg {

// One rank of a tensor-parallel model (model/shard.h): the ForwardPass runs its shard
// (its config's heads, KV heads and intermediate size) and meets the other ranks through
// comm: an all-reduce after the embedding, after each o_proj and after each down_proj,
// and a gather of the LM head's vocabulary slices to rank 0, which alone returns logits.
struct RankContext {
  Communicator* comm = nullptr;  // null: the whole model on one backend
  std::vector<int64_t> vocab;    // [ranks + 1] each rank's vocabulary rows
  // This rank's rows of the embedding, whose table holds them and then a zero row that
  // every other token reads.
  int64_t vocab0 = 0, vocab_rows = 0;
};

class ForwardPass {
 public:
  // max_ubatch: tokens run through the layers at once; larger batches are split.
  // kv_type: the KV cache's element type, F32 (exact, what tests against the reference
  // forward pass use) or F16 (Model's default). The cache is a pool of kv_blocks blocks
  // of kv_block_size tokens; 0 blocks: enough for max_sequences whole contexts, which
  // is also the layout of batches without block tables (sequence s owns the
  // blocks_per_sequence() blocks from s * blocks_per_sequence(), in order).
  // tp: this pass is one rank of several (RankContext), cfg and w that rank's shard.
  ForwardPass(const ModelConfig& cfg, const ModelWeights& w, Backend& backend, int context_length, int max_sequences,
              int max_ubatch = 256, DType kv_type = DType::F32, int kv_block_size = 16, int kv_blocks = 0,
              RankContext tp = {});
  // Logits [n_wanted, vocab] for the tokens whose want_logits is kLogits, in batch order
  // (tensor parallel: on rank 0; the other ranks return none).
  std::span<const float> run(const Batch& batch);
  // Throws upg::Error for a batch run() would refuse (before any op: tensor-parallel
  // ranks check it on the caller's thread, so a bad batch stops none of them).
  void validate(const Batch& b) const;
  // The argmax of each kGreedy token's logits, in batch order, of the last run().
  std::span<const int32_t> greedy() const { return greedy_; }
  int context_length() const { return ctx_; }
  int kv_block_size() const { return block_size_; }
  int kv_blocks() const { return n_blocks_; }
  int blocks_per_sequence() const { return (ctx_ + block_size_ - 1) / block_size_; }
  // Calibration hook: sees every matmul input (null to remove). Costs nothing when unset.
  // The input is backend memory: host memory on the CPU backend, the one calibration runs on.
  void set_observer(MatmulObserver obs) { observer_ = std::move(obs); }
  // Calibration hook: computes matmuls in the backend's stead (null to remove); called
  // after the observer. Host memory, as the observer's.
  void set_override(MatmulOverride o, MatmulKnown known = {}) {
    override_ = std::move(o);
    known_ = std::move(known);
  }
  // Layer by layer (sequential calibration): the residual stream of the whole batch
  // lives in the caller's host x [b.size(), hidden]. embed writes it; run_layer runs
  // decoder layer l on it in place, writing that layer's KV cache entries as run() would
  // (each ubatch goes through the backend's memory and back).
  void embed(const Batch& b, float* x);
  void run_layer(int l, const Batch& b, float* x);
  // The weights' device forms changed (Model::replace_weight): steps a backend recorded
  // with the old ones are not replayed.
  void weights_changed() { ++generation_; }

 private:
  // Token ids, positions, cache slots and block tables of tokens [begin, end) of b, in
  // the backend's memory: the one host-to-backend exchange of a ubatch.
  AttentionBatch setup_ubatch(const Batch& b, size_t begin, size_t end);
  // Decoder layer l over n tokens of the residual stream x [n, hidden], in place.
  void layer(int l, int64_t n, float* x, const AttentionBatch& ab);
  // decode_rows, decode_logit_rows: how many of the ubatch's tokens, and of its rows that
  // reach the LM head (which keep the ubatch's order), lead as the decode class; -1
  // without classes (step_ops).
  void run_ubatch(const Batch& b, size_t begin, size_t end, int64_t decode_rows = -1, int64_t decode_logit_rows = -1);
  // A batch with token classes (Batch::prompt): each ubatch runs with its generated
  // tokens first (set_decode_rows), and its logits go back to the batch's order.
  void run_classes(const Batch& b, size_t begin, size_t end);
  // A ubatch's ops after its tables are uploaded: embedding, layers, and the LM head on
  // the rows of runs_. What a backend may record and replay (Backend::replay_step).
  // decode_rows, decode_logit_rows as run_ubatch's (Backend::set_decode_rows).
  // greedy: some of the m rows want only their argmax (Batch::kGreedy), which goes to ids_.
  void step_ops(int64_t n, const AttentionBatch& ab, size_t m, bool greedy, int64_t decode_rows,
                int64_t decode_logit_rows);
  float* f(const BackendBuffer& b) const { return b.as<float>(); }
  // x += w(in) (the output projections onto the residual stream). Across ranks, rank 0
  // adds its part onto x, the others compute theirs into tmp (or, holding no part of w,
  // contribute zeros), and an all-reduce leaves the sum in every rank's x.
  void add_output(const LinearWeight& w, const float* in, int64_t n, float* x, float* tmp);
  bool lead() const { return !tp_.comm || tp_.comm->rank() == 0; }
  void matmul(const LinearWeight& w, const float* x, int64_t n, float* y);
  // y += x W^T (Backend::matmul_add; scratch [n, w.rows] for backends that need it).
  void matmul_add(const LinearWeight& w, const float* x, int64_t n, float* y, float* scratch);
  // Weights on the same input as one backend op (Backend::matmul_same_input).
  void matmul_same_input(std::initializer_list<const LinearWeight*> ws, const float* x, int64_t n,
                         std::initializer_list<float*> ys);

  const ModelConfig& cfg_;
  const ModelWeights& w_;
  Backend& be_;
  int ctx_, max_seqs_, max_ubatch_, block_size_, n_blocks_;
  RopeCache rope_;
  // Activations for one ubatch in the backend's memory, allocated once (shapes in
  // comments, U = max_ubatch).
  BackendBuffer x_;     // [U, hidden] residual stream
  BackendBuffer xb_;    // [U, hidden] normed input
  BackendBuffer q_;     // [U, H * hd]
  BackendBuffer k_;     // [U, KV * hd]
  BackendBuffer v_;     // [U, KV * hd]
  BackendBuffer att_;   // [U, H * hd]
  BackendBuffer tmp_;   // [U, hidden]
  BackendBuffer gate_;  // [U, inter]
  BackendBuffer up_;    // [U, inter]
  BackendBuffer last_;  // [U, hidden] final-normed rows that want logits
  BackendBuffer out_;   // [rows, vocab] their logits; grows with the rows a ubatch wants
  BackendBuffer ids_;   // [rows] their argmax, when some want only that
  // Tensor parallel: this rank's logits [rows, its vocabulary rows], the gather's
  // scratch on rank 0 [rows, vocab], and zeros [U, hidden] for a rank with no part of
  // an output projection.
  BackendBuffer local_, gather_, zeros_;
  RankContext tp_;
  float sync_ = 0;  // ranks other than 0 wait for their step's end by reading one value here
  // The ubatch's tables: slots [U] int64, then tokens, positions and block_begin [U]
  // int32 each, built on the host in one array and uploaded as one copy; then the block
  // ids, which grow with the batch's tables.
  std::vector<int64_t> tables_;
  BackendBuffer tables_dev_;
  enum Table32 { kTokens, kPositions, kBlockBegin };
  int32_t* host32(Table32 i) { return reinterpret_cast<int32_t*>(tables_.data() + max_ubatch_) + i * max_ubatch_; }
  int32_t* dev32(Table32 i) const {
    return reinterpret_cast<int32_t*>(tables_dev_.as<int64_t>() + max_ubatch_) + i * max_ubatch_;
  }
  std::vector<int32_t> default_tables_;  // 0 .. n: the tables of batches without their own
  BackendBuffer default_tables_dev_;     // uploaded once
  BackendBuffer block_ids_dev_;          // a paged batch's block ids
  std::vector<float> logits_;  // [n_wanted, vocab] on the host, grows only when a batch wants more rows
  // The ubatch rows that reach the LM head, as (first, count) runs, and the key of the
  // ubatch's step (Backend::replay_step).
  std::vector<std::pair<size_t, size_t>> runs_;
  std::vector<int64_t> step_key_;
  int64_t generation_ = 0;
  size_t n_wanted_ = 0;
  std::vector<int32_t> greedy_;  // [n_greedy] the picks of the batch's kGreedy tokens, in batch order
  size_t n_greedy_ = 0;
  std::vector<int32_t> ids_host_, ordered_greedy_;
  // run_classes' scratch, reused: the reordered ubatch, and its logits in that order.
  Batch ordered_;
  std::vector<float> ordered_logits_;
  MatmulObserver observer_;
  MatmulOverride override_;
  MatmulKnown known_;
};

}  // namespace upg
