#include "compress/calibrate.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "compress/sha256.h"
#include "upg/core/file-text.h"
#include "upg/core/error.h"
#include "upg/model/model.h"

namespace upg::compress {

std::string default_calibration_path() {
  namespace fs = std::filesystem;
  const fs::path rel = "tests/fixtures/calibration-chat.txt";
  std::error_code ec;
  if (fs::is_regular_file(rel, ec)) return rel.string();
  // The binary lives in <repo>/build*/upg; look beside the repository it was built in.
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
      if (fs::is_regular_file(dir / rel, ec)) return (dir / rel).string();
  return rel.string();
}

CalibrationCollector::CalibrationCollector(HessianFilter hessian_for, int threads)
    : hessian_for_(std::move(hessian_for)), threads_(threads) {}

void CalibrationCollector::observe(const LinearWeight& w, const float* x, int64_t n) {
  auto& acc = sumsq_[w.name];
  if (acc.empty()) acc.assign(size_t(w.cols), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < w.cols; ++j) acc[size_t(j)] += double(x[t * w.cols + j]) * x[t * w.cols + j];
  if (!hessian_for_ || !hessian_for_(w.name)) return;
  const size_t len = size_t(n * w.cols);
  const bool same =
      last_h_ && last_h_->cols == w.cols && last_x_.size() == len && std::equal(x, x + len, last_x_.begin());
  auto& slot = hessians_[w.name];
  if (!slot) slot = same ? last_h_ : std::make_shared<Hessian>(make_hessian(w.cols));
  if (same && slot == last_h_) return;
  accumulate_hessian(*slot, x, n, threads_);
  last_x_.assign(x, x + len);
  last_h_ = slot;
}

Calibration CalibrationCollector::finish(int64_t tokens) {
  Calibration cal;
  for (auto& [name, acc] : sumsq_) {
    std::vector<float> norms(acc.size());
    for (size_t j = 0; j < acc.size(); ++j) norms[j] = float(std::sqrt(acc[j]));
    cal.col_norms.emplace(name, std::move(norms));
  }
  std::set<const Hessian*> done;  // shared Hessians are mirrored once
  for (auto& [name, h] : hessians_)
    if (done.insert(h.get()).second) symmetrize(*h);
  cal.hessians = std::move(hessians_);
  cal.tokens = tokens;
  return cal;
}

std::vector<Batch> calibration_batches(const Model& model, const std::vector<int32_t>& tokens, int chunk) {
  if (tokens.empty()) throw Error("calibration: no tokens");
  const size_t step = size_t(std::max(1, std::min(chunk, model.context_length())));
  std::vector<Batch> out;
  for (size_t b = 0; b < tokens.size(); b += step) {
    const size_t e = std::min(tokens.size(), b + step);
    Batch& batch = out.emplace_back();
    // Only the last token asks for logits: calibration needs the matmul inputs, and a
    // full [tokens, vocab] logits matrix would be the largest buffer of the run.
    for (size_t i = b; i < e; ++i) batch.add(tokens[i], int32_t(i - b), 0, i + 1 == e);
  }
  return out;
}

ObserverScope::ObserverScope(Model& model, MatmulObserver obs) : model_(model) {
  model_.set_matmul_observer(std::move(obs));
}
ObserverScope::~ObserverScope() { model_.set_matmul_observer(nullptr); }

Calibration calibrate_tokens(Model& model, const std::vector<int32_t>& tokens, int chunk,
                             const HessianFilter& hessian_for, int threads) {
  const std::vector<Batch> batches = calibration_batches(model, tokens, chunk);
  CalibrationCollector collector(hessian_for, threads);
  {
    ObserverScope scope(model, [&](const LinearWeight& w, const float* x, int64_t n) { collector.observe(w, x, n); });
    for (const Batch& b : batches) model.decode(b);
  }
  return collector.finish(int64_t(tokens.size()));
}

CalibrationInput open_calibration(const std::string& model_path, const std::string& text_path, int max_positions,
                                  int chunk, int threads, const std::vector<int32_t>& ids) {
  CalibrationInput in;
  ModelOptions opts;
  opts.load.dequant_to = DType::F32;
  opts.load.keep_gguf_qk_rows = false;  // layerwise compression swaps in Hugging Face-order weights
  opts.n_threads = threads;
  opts.context_length = max_positions > 0 ? std::min(chunk, max_positions) : chunk;
  // One batch, one run through a layer: a layerwise pass that stops at its group's
  // matmuls then stops for the whole batch, not only for its last ubatch.
  opts.max_ubatch = opts.context_length;
  in.model = Model::from_file(model_path, opts);
  if (!ids.empty()) {
    in.tokens = ids;
    return in;
  }
  const std::string text = read_file_text(text_path, "the calibration text");
  if (!in.model->has_tokenizer())
    throw ParamError("prune", fmt::format("{}: the model has no tokenizer, which calibration needs (magnitude pruning "
                                          "does not calibrate)",
                                          model_path));
  // Special tokens are parsed: a chat transcript (tests/fixtures/calibration-chat.txt)
  // calibrates the template tokens the model sees in every conversation.
  in.tokens = in.model->tokenizer().encode(text, in.model->tokenizer().add_bos(), true);
  if (in.tokens.empty()) throw Error(fmt::format("{}: the calibration text yields no tokens", text_path));
  in.text_file = text_path;
  in.text_sha256 = sha256_hex(text);
  return in;
}

}  // namespace upg::compress
