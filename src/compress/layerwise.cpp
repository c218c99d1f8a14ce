#include "compress/layerwise.h"

#include <algorithm>

#include <fmt/format.h>

#include "compress/calibrate.h"
#include "compress/gptq.h"
#include "compress/layer-matmuls.h"
#include "compress/sparsegpt.h"
#include "upg/core/error.h"
#include "upg/kernels/cpu.h"

namespace upg::compress {

namespace {

// The matmuls of one layer that read the same input (q, k and v; gate and up), in the
// order the layer runs them.
struct InputGroup {
  std::vector<std::string> names;
  int64_t cols = 0;
  std::vector<float> source_input;  // [tokens, cols]: the input in the source model
  // Tokens seen so far in the current pass: a layer may take a batch's tokens in several
  // calls (micro-batches), always in token order.
  size_t seen = 0;
};

// Fused weights (Phi-3's qkv_proj, gate_up_proj) run as row slices under one name, one
// call per slice on the same input: only the first of consecutive calls by a name brings
// new tokens.
class NewInput {
 public:
  bool operator()(const LinearWeight& w) {
    if (last_ == w.name) return false;
    last_ = w.name;
    return true;
  }

 private:
  std::string last_;
};

// The calibration tokens in the model's batches, over one residual stream [tokens, hidden].
class Streams {
 public:
  Streams(const Model& model, const std::vector<int32_t>& tokens, int chunk)
      : batches_(calibration_batches(model, tokens, chunk)), hidden_(model.config().hidden_size) {}

  template <class F>
  void each(std::vector<float>& stream, F&& f) const {
    size_t off = 0;
    for (const Batch& b : batches_) {
      f(b, stream.data() + off * size_t(hidden_));
      off += b.size();
    }
  }

 private:
  std::vector<Batch> batches_;
  int64_t hidden_;
};

// Runs layer l on the source stream (advancing it) and records, group by group, the
// inputs of the matmuls `mine` accepts. Matmuls fed the very same values as the previous
// one join its group (detected from the values, not the names).
std::vector<InputGroup> record_source_inputs(Model& model, int l, const std::function<bool(const std::string&)>& mine,
                                             const Streams& streams, std::vector<float>& source, size_t tokens) {
  std::vector<InputGroup> groups;
  std::map<std::string, size_t, std::less<>> group_of;
  std::vector<float> last;
  NewInput fresh;
  ObserverScope scope(model, [&](const LinearWeight& w, const float* x, int64_t n) {
    if (!fresh(w) || !mine(w.name)) return;
    const size_t len = size_t(n * w.cols);
    auto it = group_of.find(w.name);
    if (it == group_of.end()) {
      const bool same = !groups.empty() && groups.back().cols == w.cols && last.size() == len &&
                        std::equal(x, x + len, last.begin());
      if (!same) {
        InputGroup& g = groups.emplace_back();
        g.cols = w.cols;
        g.source_input.resize(tokens * size_t(w.cols));
      }
      groups.back().names.push_back(w.name);
      it = group_of.emplace(w.name, groups.size() - 1).first;
      last.assign(x, x + len);
    }
    InputGroup& g = groups[it->second];
    if (g.names.front() != w.name) return;
    if (g.seen + size_t(n) > tokens)
      throw Error(fmt::format("sparsegpt: {} saw more than the {} calibration tokens", w.name, tokens));
    std::copy(x, x + len, g.source_input.data() + g.seen * size_t(w.cols));
    g.seen += size_t(n);
  });
  streams.each(source, [&](const Batch& b, float* xs) { model.run_layer(l, b, xs); });
  return groups;
}

// Thrown by an observer to end a layer run once the matmul inputs it wanted were seen.
struct StopLayer {};

// One weight through the sweep (SparseGPT's pruning, GPTQ's rounding or both) and into
// its stored form; `decoded` receives the weights as the file will give them back.
PrunedTensor sweep_one(std::vector<float>& w, const std::vector<float>& src, int64_t rows, int64_t cols,
                       const Hessian& H, const std::vector<float>& u, const MatrixOptions& mo,
                       const LayerwiseOptions& lo, const std::string& name, std::vector<float>& decoded) {
  PrunedTensor p;
  if (!lo.gptq) {
    sparsegpt_prune(w, rows, cols, u, mo.pattern, mo.sparsity, mo.threads, kSparseGptBlock);
    // The update leaves exactly the survivors nonzero: magnitude selection keeps them.
    p.data = compress_matrix(w, rows, cols, {}, mo, name, &p.stats, &decoded, src);
    return p;
  }
  const Int8RowGrid int8(mo.quant);
  const bool is_int4 = format::is_grouped(mo.values.encoding) && !lo.dense;  // int4, int3 or int2
  const Int4GroupGrid int4(mo.values.group_size, mo.values.zero_point, mo.quant, is_int4 ? mo.values.bits() : 4);
  GptqOptions go;
  go.grid = is_int4 ? static_cast<const QuantGrid*>(&int4) : &int8;
  go.act_order = lo.act_order;
  go.damp = kSparseGptDamp;
  go.block = kSparseGptBlock;
  go.threads = mo.threads;
  if (!lo.dense) go.pattern = mo.pattern, go.sparsity = mo.sparsity;
  const std::vector<GridParams> grids = gptq_sweep(w, rows, cols, H, u, go);
  if (lo.dense) {
    p.dense = quantize_dense_int8(w, rows, cols, mo.quant, name, &p.stats, mo.threads, grids, src);
    decoded = w;  // already the grid's values
  } else {
    p.data = compress_matrix(w, rows, cols, {}, mo, name, &p.stats, &decoded, src, grids);
  }
  return p;
}

}  // namespace

std::map<std::string, PrunedTensor, std::less<>> sparsegpt_layerwise(
    Model& model, const std::vector<int32_t>& tokens, const MatrixOptions& mo,
    const std::function<bool(const std::string&)>& prune, int chunk, const std::function<void(int)>& progress,
    const LayerwiseOptions& lo) {
  const ModelConfig& c = model.config();
  const Streams streams(model, tokens, chunk);
  // The residual stream of every calibration token [tokens, hidden] through the source
  // model (`source`) and through the model as pruned so far (`x`); `scratch` is the copy
  // a pass writes into when only its matmul inputs matter.
  std::vector<float> x(tokens.size() * size_t(c.hidden_size)), source, scratch;
  streams.each(x, [&](const Batch& b, float* xs) { model.embed(b, xs); });
  source = x;

  std::map<std::string, PrunedTensor, std::less<>> out;
  std::vector<float> src, updated, decoded, current;
  bool drifted = false;  // whether any weight was replaced yet: until then x == source
  LayerMatmuls matmuls(model, tokens.size(), mo.threads);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string prefix = fmt::format("model.layers.{}.", l);
    auto mine = [&](const std::string& name) { return name.starts_with(prefix) && prune(name); };
    matmuls.new_layer();
    matmuls.new_pass(false);
    std::vector<InputGroup> groups = record_source_inputs(model, l, mine, streams, source, tokens.size());
    // Group by group (true sequential): each group's Hessian comes from the layer with the
    // groups before it already pruned, so o_proj makes up for what q, k and v lost.
    for (InputGroup& g : groups) {
      // The group's input in the model as compressed so far, then its Hessian (and the
      // cross term with the source's input) as BLAS calls once the pass is over, so the
      // engine's threads and OpenBLAS's do not take turns on the cores.
      g.seen = 0;
      current.resize(tokens.size() * size_t(g.cols));
      size_t batch_left = 0;  // tokens of the running batch whose input is still to come
      std::vector<int64_t> chunks;
      scratch = x;
      matmuls.new_pass();
      {
        NewInput fresh;
        ObserverScope scope(model, [&](const LinearWeight& w, const float* xin, int64_t n) {
          const bool first_call = fresh(w);
          if (first_call && w.name == g.names.front()) {
            if (g.seen + size_t(n) > tokens.size())
              throw Error(fmt::format("sparsegpt: {} saw more than the {} calibration tokens", w.name, tokens.size()));
            std::copy(xin, xin + n * g.cols, current.data() + g.seen * size_t(g.cols));
            chunks.push_back(n);
            g.seen += size_t(n);
            batch_left -= std::min(batch_left, size_t(n));
          }
          // Everything after the group's matmuls would be thrown away: the engine has no
          // partial layer run, so the rest of the layer is skipped by unwinding.
          if (w.name == g.names.back() && batch_left == 0) throw StopLayer{};
        });
        streams.each(scratch, [&](const Batch& b, float* xs) {
          batch_left = b.size();
          fresh = NewInput{};  // a stopped run leaves the last name seen behind
          try {
            model.run_layer(l, b, xs);
          } catch (const StopLayer&) {
          }
        });
      }
      if (g.seen != tokens.size())
        throw Error(fmt::format("sparsegpt: {} saw {} of the {} calibration tokens", g.names.front(), g.seen,
                                tokens.size()));
      // Chunk by chunk as the engine delivered them, so the sums are the ones a Hessian
      // collected during the forward pass (CalibrationCollector) has, bit for bit.
      Hessian H = make_hessian(g.cols), C = drifted ? make_hessian(g.cols) : Hessian{};
      size_t off = 0;
      for (int64_t n : chunks) {
        const float* cur = current.data() + off * size_t(g.cols);
        accumulate_hessian(H, cur, n, mo.threads);
        if (drifted) accumulate_cross(C, g.source_input.data() + off * size_t(g.cols), cur, n, mo.threads);
        off += size_t(n);
      }
      g.source_input = {};
      symmetrize(H);
      double lambda = 0;
      const std::vector<float> u = inverse_factor(H, kSparseGptDamp, mo.threads, &lambda);
      for (const std::string& name : g.names) {
        const TensorView& t = model.source().weights.get(name);
        const int64_t rows = t.shape[0], cols = t.shape[1];
        src.resize(size_t(t.numel()));
        convert_to_f32(t.dtype, t.data, src.data(), t.numel());
        updated = src;
        // Until a weight changed, the inputs are the source's (C = H) and the target is w.
        if (drifted) sparsegpt_target(updated, rows, cols, C, lambda, u, kAsymmetricBlend, mo.threads);
        if (lo.setting_for) {
          const Setting s = lo.setting_for(name);
          LayerwiseOptions own = lo;
          own.dense = s.dense_int8;
          own.act_order = lo.act_order && !s.matrix.pattern.is_nm();
          out.emplace(name, sweep_one(updated, src, rows, cols, H, u, s.matrix, own, name, decoded));
        } else {
          out.emplace(name, sweep_one(updated, src, rows, cols, H, u, mo, lo, name, decoded));
        }
        model.replace_weight(name, decoded);
        matmuls.settle(name);
      }
      drifted = true;
    }
    // Only the last group's products are new in this pass: nothing after it to keep them for.
    matmuls.new_pass(false);
    streams.each(x, [&](const Batch& b, float* xs) { model.run_layer(l, b, xs); });
    if (progress) progress(l);
  }
  if (lo.computed_rows) *lo.computed_rows = matmuls.computed();
  if (!lo.head.empty()) {
    // The head's input is the final norm of the stream, which no matmul observer sees for
    // every token (calibration batches ask for the last token's logits only).
    const int64_t hidden = c.hidden_size, n = int64_t(tokens.size());
    const TensorView& g = model.source().weights.get("model.norm.weight");
    std::vector<float> gamma(static_cast<size_t>(hidden));
    convert_to_f32(g.dtype, g.data, gamma.data(), hidden);
    kernels::rmsnorm(x.data(), gamma.data(), x.data(), hidden, n, c.rms_norm_eps);
    Hessian H = make_hessian(hidden);
    accumulate_hessian(H, x.data(), n, mo.threads);
    symmetrize(H);
    const std::vector<float> u = inverse_factor(H, kSparseGptDamp, mo.threads);
    const TensorView& t = model.source().weights.get(lo.head);
    const int64_t rows = t.shape[0], cols = t.shape[1];
    src.resize(size_t(t.numel()));
    convert_to_f32(t.dtype, t.data, src.data(), t.numel());
    updated = src;
    LayerwiseOptions head = lo;
    head.dense = false;
    out.emplace(lo.head, sweep_one(updated, src, rows, cols, H, u, lo.head_options, head, lo.head, decoded));
    if (progress) progress(c.num_layers);
  }
  return out;
}

}  // namespace upg::compress
