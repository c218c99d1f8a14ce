#include "upg/model/model.h"

#include <algorithm>
#include <chrono>
#include <map>

#include <fmt/format.h>

#include "model/forward.h"
#include "model/profiling-backend.h"
#include "model/tensor-parallel.h"
#include "model/weights.h"
#include "upg/kernels/backend.h"
#include "upg/kernels/communicator.h"
#include "upg/kernels/cpu.h"
#include "upg/kernels_cuda/cuda.h"
#include "upg/core/error.h"
#include "upg/core/thread-pool.h"

namespace upg {

struct Model::Impl {
  ModelSource source;
  ModelWeights weights;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ForwardPass> forward;
  std::unique_ptr<TensorParallel> tp;  // instead of backend and forward, with tensor_parallel > 1
  ForwardPass& fwd() { return tp ? tp->lead() : *forward; }
  std::unique_ptr<Tokenizer> tokenizer;
  int ctx = 0;
  int max_seqs = 1;
  Device device = Device::Cpu;
  std::map<std::string, std::vector<float>, std::less<>> replaced;  // replace_weight's buffers
};

namespace {

// Asks the backend about every weight's encoding once at load, so an unsupported one is
// a clear error naming the tensor rather than a failure in the middle of a forward pass.
void check_backend_supports(const Backend& be, const ModelWeights& w, const std::string& path) {
  auto check = [&](const LinearWeight& lw) {
    const bool ok = lw.compressed ? be.supports(lw.compressed->layout, lw.compressed->encoding)
                                  : be.supports(Op::Matmul, lw.dtype);
    if (!ok)
      throw Error(fmt::format("{}: tensor '{}': the {} backend cannot run {}", path, lw.name, be.name(),
                              lw.compressed ? fmt::format("{} {}", format::layout_name(lw.compressed->layout),
                                                          format::encoding_name(lw.compressed->encoding))
                                            : std::string(dtype_name(lw.dtype))));
  };
  check(w.lm_head);
  for (const LayerWeights& l : w.layers)
    for (auto proj : kProjections) check(l.*proj);
  // The embedding table goes through embed, not matmul.
  const bool embed_ok = w.embed.compressed ? be.supports(w.embed.compressed->layout, w.embed.compressed->encoding)
                                           : be.supports(Op::Embed, w.embed.dtype);
  if (!embed_ok) check(w.embed);
}

}  // namespace

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::from_file(const std::string& path, const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model());
  Impl& d = *m->impl_;
  if (options.context_length < 0)
    throw ParamError("context_length", fmt::format("must be 0 (the model's) or more, got {}", options.context_length));
  d.source = load_model_source(path, options.load);
  const ModelConfig& cfg = d.source.config;
  if (cfg.num_heads <= 0 || cfg.num_kv_heads <= 0 || cfg.num_heads % cfg.num_kv_heads != 0 || cfg.head_dim <= 0 ||
      cfg.hidden_size <= 0 || cfg.num_layers <= 0 || cfg.vocab_size <= 0 || cfg.intermediate_size <= 0)
    throw Error(fmt::format("{}: inconsistent config (heads {}, kv heads {}, head_dim {}, hidden {})", path,
                            cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden_size));
  const int max_pos = cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings : 8192;
  if (options.context_length > max_pos)
    throw ParamError("context_length", fmt::format("{} exceeds the max_position_embeddings {} of {}",
                                                   options.context_length, max_pos, path));
  d.ctx = options.context_length != 0 ? options.context_length : std::min(max_pos, 8192);
  d.max_seqs = std::max(1, options.max_sequences);
  if (options.max_ubatch < 1)
    throw ParamError("max_ubatch", fmt::format("must be at least 1 token, got {}", options.max_ubatch));
  try {
    d.weights = bind_weights(d.source);
  } catch (const Error& e) {
    // Binding errors already name the tensor; make sure they also name the file.
    std::string msg = e.what();
    if (msg.rfind(path, 0) != 0) msg = path + ": " + msg;
    throw Error(msg);
  }
  d.device = options.device;
  const int ranks = options.tensor_parallel;
  if (ranks < 1) throw ParamError("tensor_parallel", fmt::format("must be at least 1, got {}", ranks));
  // Without the CUDA backend or a device, making the backend below says so.
  if (ranks > 1 && options.device == Device::Cuda && cuda_available() && cuda_device_count() < ranks)
    throw ParamError("tensor_parallel", fmt::format("{} ranks need {} CUDA devices, found {}", ranks, ranks,
                                                    cuda_device_count()));
  const int rank_threads = options.n_threads > 0 ? std::max(1, options.n_threads / ranks)
                                                 : std::max(1, ThreadPool::hardware_threads() / ranks);
  auto make_backend = [&options, ranks, rank_threads](int rank) {
    std::unique_ptr<Backend> be =
        options.device == Device::Cuda
            ? make_cuda_backend(rank, options.cuda_graphs, options.cuda_pdl)
            : make_cpu_backend(ranks > 1 ? rank_threads : options.n_threads,
                               options.reference_kernels ? CpuKernels::Reference : CpuKernels::Fast);
    return options.profile ? make_profiling_backend(std::move(be)) : std::move(be);
  };
  // Tensor parallel: this backend only answers the load checks; the ranks make their own.
  d.backend = make_backend(0);
  check_backend_supports(*d.backend, d.weights, path);
  if (!d.backend->supports(Op::Attention, options.kv_type))
    throw Error(fmt::format("the {} backend cannot keep a KV cache of {}", d.backend->name(),
                            dtype_name(options.kv_type)));
  // Shards view the source's pages from several ranks: none may give them back.
  if (ranks == 1)
    d.backend->set_source_unused([&store = d.source.weights](const void* p, size_t n) { store.release(p, n); });
  int kv_blocks = options.kv_blocks;
  if (kv_blocks == 0 && options.kv_memory_bytes != 0) {
    // Keys and values per layer, head and slot, and int8's one scale per row: what the
    // backend's kv_alloc reserves for a block.
    const int64_t row = int64_t(cfg.head_dim) * int64_t(dtype_bytes(options.kv_type, 1)) +
                        (options.kv_type == DType::I8 ? int64_t(sizeof(float)) : 0);
    // Tensor parallel: the rank with the most KV heads.
    const int64_t heads = (cfg.num_kv_heads + ranks - 1) / ranks;
    const int64_t block = 2 * int64_t(cfg.num_layers) * heads * std::max(1, options.kv_block_size) * row;
    if (options.kv_memory_bytes < block)
      throw ParamError("kv_memory", fmt::format("{} bytes is less than one KV cache block ({} bytes)",
                                                options.kv_memory_bytes, block));
    kv_blocks = int(std::min<int64_t>(options.kv_memory_bytes / block, INT32_MAX));
  }
  if (ranks > 1) {
    d.backend.reset();
    TensorParallelOptions t;
    t.ranks = ranks;
    t.timeout = std::chrono::milliseconds(options.tensor_parallel_timeout_ms);
    t.make_backend = make_backend;
    t.make_communicators = [&options, ranks](std::span<Backend* const> backends) {
      return options.device == Device::Cuda ? make_nccl_communicators(backends)
                                            : make_cpu_communicators(ranks, options.tensor_parallel_timeout_ms);
    };
    t.context_length = d.ctx;
    t.max_sequences = d.max_seqs;
    t.max_ubatch = options.max_ubatch;
    t.kv_type = options.kv_type;
    t.kv_block_size = options.kv_block_size;
    t.kv_blocks = kv_blocks;
    d.tp = std::make_unique<TensorParallel>(cfg, d.weights, std::move(t));
  } else {
    d.forward = std::make_unique<ForwardPass>(cfg, d.weights, *d.backend, d.ctx, d.max_seqs, options.max_ubatch,
                                              options.kv_type, options.kv_block_size, kv_blocks);
  }
  if (d.source.tokenizer) d.tokenizer = std::make_unique<Tokenizer>(*d.source.tokenizer);
  return m;
}

const ModelConfig& Model::config() const { return impl_->source.config; }
const ModelSource& Model::source() const { return impl_->source; }
bool Model::has_tokenizer() const { return impl_->tokenizer != nullptr; }
const Tokenizer& Model::tokenizer() const {
  if (!impl_->tokenizer) throw Error(fmt::format("{}: the model has no tokenizer", impl_->source.path));
  return *impl_->tokenizer;
}
int Model::context_length() const { return impl_->ctx; }
int Model::max_sequences() const { return impl_->max_seqs; }
int Model::kv_blocks() const { return impl_->fwd().kv_blocks(); }
int Model::kv_block_size() const { return impl_->fwd().kv_block_size(); }
void Model::copy_kv_blocks(std::span<const BlockCopy> copies) {
  if (impl_->tp) return impl_->tp->copy_kv_blocks(copies);
  impl_->backend->kv_copy_blocks(copies);
}
Backend& Model::backend() { return impl_->tp ? impl_->tp->lead_backend() : *impl_->backend; }
int Model::tensor_parallel() const { return impl_->tp ? impl_->tp->ranks() : 1; }
std::vector<OpProfile> Model::profile() const {
  return profile_of(impl_->tp ? impl_->tp->lead_backend() : *impl_->backend);
}

namespace {
// Calibration reads and writes activations in host memory, of one whole model: the layer
// calls (embed, run_layer, replace_weight) need the whole model on one rank, and the
// matmul hooks also a CPU backend (they see host pointers).
void check_one_rank(const std::string& path, int ranks, const char* what) {
  if (ranks > 1)
    throw Error(fmt::format("{}: calibration ({}) runs on one rank, not {} (tensor_parallel)", path, what, ranks));
}
void check_calibration(const std::string& path, bool cpu, const std::string& backend, int ranks, const char* what) {
  check_one_rank(path, ranks, what);
  if (!cpu) throw Error(fmt::format("{}: calibration ({}) runs on the CPU backend, not {}", path, what, backend));
}
}  // namespace

void Model::set_matmul_observer(MatmulObserver obs) {
  if (obs) check_calibration(impl_->source.path, impl_->device == Device::Cpu, backend().name(), tensor_parallel(), "a matmul observer");
  if (impl_->forward) impl_->forward->set_observer(std::move(obs));
}

void Model::set_matmul_override(MatmulOverride o, MatmulKnown known) {
  if (o) check_calibration(impl_->source.path, impl_->device == Device::Cpu, backend().name(), tensor_parallel(), "a matmul override");
  if (impl_->forward) impl_->forward->set_override(std::move(o), std::move(known));
}

std::span<const float> Model::decode(const Batch& batch) {
  return impl_->tp ? impl_->tp->run(batch) : impl_->forward->run(batch);
}
std::span<const int32_t> Model::greedy() const { return impl_->tp ? impl_->tp->greedy() : impl_->forward->greedy(); }

void Model::embed(const Batch& batch, float* x) {
  check_one_rank(impl_->source.path, tensor_parallel(), "embed");
  impl_->forward->embed(batch, x);
}
void Model::run_layer(int layer, const Batch& batch, float* x) {
  check_one_rank(impl_->source.path, tensor_parallel(), "run_layer");
  impl_->forward->run_layer(layer, batch, x);
}

void Model::replace_weight(const std::string& name, std::vector<float> w) {
  Impl& d = *impl_;
  check_one_rank(d.source.path, tensor_parallel(), "replace_weight");
  const TensorView* t = d.source.weights.find(name);
  if (!t || t->shape.size() != 2 || int64_t(w.size()) != t->numel())
    throw Error(fmt::format("replace_weight: no dense [rows, cols] weight '{}' of {} values", name, w.size()));
  const int64_t cols = t->shape[1];
  // Where the linears point now: into the source tensor, or into an earlier replacement.
  auto prev = d.replaced.find(name);
  const std::byte* base = prev != d.replaced.end() ? reinterpret_cast<const std::byte*>(prev->second.data()) : t->data;
  const int64_t row_bytes =
      prev != d.replaced.end() ? int64_t(sizeof(float)) * cols : int64_t(dtype_bytes(t->dtype, cols));
  std::vector<int64_t> rows0;
  std::vector<LinearWeight*> bound_to;
  // Every linear bound to the tensor (all row slices of a fused one) moves to the new
  // buffer at its own row offset. Only the fp32 matmul reads them: no backend packs
  // dense weights at prepare time.
  for (LayerWeights& l : d.weights.layers)
    for (auto proj : kProjections)
      if (LinearWeight* lw = &(l.*proj); !lw->compressed && !lw->scales && name == lw->name) {
        bound_to.push_back(lw);
        rows0.push_back((static_cast<const std::byte*>(lw->data) - base) / row_bytes);
      }
  if (bound_to.empty()) throw Error(fmt::format("replace_weight: '{}' is not a dense decoder linear weight", name));
  std::vector<float>& buf = d.replaced[name] = std::move(w);
  for (size_t i = 0; i < bound_to.size(); ++i) {
    bound_to[i]->data = buf.data() + rows0[i] * cols;
    bound_to[i]->dtype = DType::F32;
  }
  d.fwd().weights_changed();
}

std::vector<float> Model::forward(const std::vector<int32_t>& tokens) {
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int32_t(i), 0, true);
  auto logits = decode(b);
  return {logits.begin(), logits.end()};
}

}  // namespace upg
