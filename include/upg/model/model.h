#pragma once
// The public model API: load any supported file, run tokens through it.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "upg/kernels/backend.h"
#include "upg/model/batch.h"
#include "upg/model/op-profile.h"
#include "upg/core/config.h"
#include "upg/io/io.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {

class Backend;
struct ModelWeights;

// Where the forward pass runs: the CPU backend, or the CUDA backend on GPU 0.
enum class Device { Cpu, Cuda };

struct ModelOptions {
  LoadOptions load;
  // Cuda fails at load, with one upg::Error line, in a build without the CUDA backend
  // or on a machine without a CUDA device.
  Device device = Device::Cpu;
  int n_threads = 0;       // 0: every core
  int context_length = 0;  // 0: the model's max_position_embeddings, capped at 8192
  int max_sequences = 1;   // KV cache slots for concurrent sequences (batching)
  // Tokens run through the layers at once; a larger batch is split into runs of this
  // many. Calibration sets it to its batch size, so a pass it stops at a matmul stops the
  // whole batch there (compress/layerwise.cpp).
  int max_ubatch = 256;
  // The reference kernels for int8 and compressed weights instead of the fast ones
  // (comparisons and debugging; `upg perplexity --reference-kernels`).
  bool reference_kernels = false;
  // Time every backend op (Model::profile, `upg run --profile`); costs a clock read per op.
  bool profile = false;
  // Cuda: record each decode step's ops once as a CUDA graph and replay it (one launch
  // instead of hundreds); off runs every op as it comes (comparisons, `upg bench`).
  bool cuda_graphs = true;
  // Cuda: programmatic dependent launch (each kernel's start overlaps the end of the one
  // before; Hopper and later); off for comparisons (`upg-bench`).
  bool cuda_pdl = true;
  // The KV cache's element type: F16 (half the memory, and half the bytes a decode
  // step's attention reads), F32 (exact; the golden tests against transformers) or I8
  // (a quarter, with one scale per head and position: for long contexts).
  DType kv_type = DType::F16;
  // The KV cache is a pool of kv_blocks blocks of kv_block_size tokens (paged: the
  // engine's KvManager hands them to sequences). 0 blocks: max_sequences whole contexts.
  int kv_block_size = 16;
  int kv_blocks = 0;
  // With kv_blocks 0: the pool's size in bytes (as many whole blocks as fit; at least
  // one). 0: max_sequences whole contexts. With tensor_parallel, per rank.
  int64_t kv_memory_bytes = 0;
  // Tensor parallelism: the model split over this many ranks (docs/ARCHITECTURE.md), each
  // on a thread of its own with its own backend: Cuda uses devices 0 .. n - 1 and NCCL
  // (fails at load with fewer devices or without NCCL); Cpu splits n_threads among n
  // ranks that exchange through shared memory (a test of the split, not a speed-up).
  // Calibration (the matmul hooks, embed, run_layer, replace_weight) needs 1.
  int tensor_parallel = 1;
  // Tensor parallel: how long one step may take on every rank before they are all
  // stopped with an error (never a hang).
  int64_t tensor_parallel_timeout_ms = 300000;
};

class Model {
 public:
  // Loads a GGUF file, a safetensors file or a Hugging Face directory. Throws upg::Error.
  static std::unique_ptr<Model> from_file(const std::string& path, const ModelOptions& options = {});
  ~Model();

  const ModelConfig& config() const;
  const ModelSource& source() const;
  bool has_tokenizer() const;
  const Tokenizer& tokenizer() const;  // throws when the model has none
  int context_length() const;
  int max_sequences() const;
  // The KV cache's pool, for a KvManager: its blocks and their size in tokens.
  int kv_blocks() const;
  int kv_block_size() const;
  // Performs a KvManager's copy-on-write block copies; call before the decode() that
  // writes into the copies.
  void copy_kv_blocks(std::span<const BlockCopy> copies);
  // The backend (tensor parallel: rank 0's).
  Backend& backend();
  // How many ranks the model is split over (ModelOptions::tensor_parallel).
  int tensor_parallel() const;
  // Per-op times since load when ModelOptions::profile was set: several-token calls, then
  // single-token ones, slowest first in each; empty without the option.
  std::vector<OpProfile> profile() const;

  // Runs a batch; returns logits [n_wanted, vocab] for the tokens with want_logits set,
  // in batch order. Positions must continue each sequence's cache (0 starts it afresh);
  // a position at or past context_length() throws upg::Error.
  std::span<const float> decode(const Batch& batch);
  // The greedy picks (argmax of the logits) of the last decode()'s tokens whose
  // want_logits was Batch::kGreedy, in batch order; those tokens have no logits rows.
  std::span<const int32_t> greedy() const;

  // Calibration: `obs` sees the input of every matmul of later decode() calls (CPU only:
  // it reads activations in host memory; throws upg::Error on another device).
  void set_matmul_observer(MatmulObserver obs);
  // Calibration: `o` computes the matmuls of later decode() and run_layer() calls it
  // accepts (returns true for), after the observer saw them (CPU only, as the observer).
  // Where `known` says o has an output projection's outputs already, the attention that
  // feeds it is skipped (the observer does not see that input).
  void set_matmul_override(MatmulOverride o, MatmulKnown known = {});

  // Sequential calibration, one decoder layer at a time (upg compress --prune sparsegpt):
  // x [batch.size(), hidden] is the batch's residual stream. embed() writes the token
  // embeddings into it; run_layer() runs layer `layer` on it in place (the observer sees
  // its matmuls). Positions start each sequence's cache as in decode().
  void embed(const Batch& batch, float* x);
  void run_layer(int layer, const Batch& batch, float* x);
  // Makes the dense weight tensor `name` [rows, cols] (a decoder linear, possibly fused)
  // compute with `w` from now on, as fp32: the pruned layers of a sequential calibration.
  // Throws upg::Error when no dense linear weight has that name or the size differs.
  void replace_weight(const std::string& name, std::vector<float> w);

  // Convenience: a fresh sequence 0, logits for every token [tokens.size(), vocab].
  std::vector<float> forward(const std::vector<int32_t>& tokens);

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upg
