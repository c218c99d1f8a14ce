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
#include "upg/file-text.h"
#include "upg/error.h"
#include "upg/model.h"

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

Calibration calibrate_tokens(Model& model, const std::vector<int32_t>& tokens, int chunk,
                             const HessianFilter& hessian_for, int threads) {
  if (tokens.empty()) throw Error("calibration: no tokens");
  Calibration cal;
  std::map<std::string, std::vector<double>, std::less<>> sumsq;
  // The previous Hessian's input: a matmul fed the very same values (k and v after q)
  // shares its Hessian instead of accumulating an identical copy.
  std::vector<float> last_x;
  std::shared_ptr<Hessian> last_h;
  model.set_matmul_observer([&](const LinearWeight& w, const float* x, int64_t n) {
    auto& acc = sumsq[w.name];
    if (acc.empty()) acc.assign(size_t(w.cols), 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < w.cols; ++j) acc[size_t(j)] += double(x[t * w.cols + j]) * x[t * w.cols + j];
    if (!hessian_for || !hessian_for(w.name)) return;
    const size_t len = size_t(n * w.cols);
    const bool same = last_h && last_h->cols == w.cols && last_x.size() == len && std::equal(x, x + len, last_x.begin());
    auto& slot = cal.hessians[w.name];
    if (!slot) slot = same ? last_h : std::make_shared<Hessian>(make_hessian(w.cols));
    if (same && slot == last_h) return;
    accumulate_hessian(*slot, x, n, threads);
    last_x.assign(x, x + len);
    last_h = slot;
  });
  const size_t step = size_t(std::max(1, std::min(chunk, model.context_length())));
  Batch batch;
  try {
    for (size_t b = 0; b < tokens.size(); b += step) {
      const size_t e = std::min(tokens.size(), b + step);
      batch.clear();
      // Only the last token asks for logits: calibration needs the matmul inputs, and a
      // full [tokens, vocab] logits matrix would be the largest buffer of the run.
      for (size_t i = b; i < e; ++i) batch.add(tokens[i], int32_t(i - b), 0, i + 1 == e);
      model.decode(batch);
    }
  } catch (...) {
    model.set_matmul_observer(nullptr);
    throw;
  }
  model.set_matmul_observer(nullptr);
  for (auto& [name, acc] : sumsq) {
    std::vector<float> norms(acc.size());
    for (size_t j = 0; j < acc.size(); ++j) norms[j] = float(std::sqrt(acc[j]));
    cal.col_norms.emplace(name, std::move(norms));
  }
  std::set<const Hessian*> done;  // shared Hessians are mirrored once
  for (auto& [name, h] : cal.hessians)
    if (done.insert(h.get()).second) symmetrize(*h);
  cal.tokens = int64_t(tokens.size());
  return cal;
}

Calibration calibrate_file(const std::string& model_path, const std::string& text_path, int max_positions, int chunk,
                           int threads, const HessianFilter& hessian_for) {
  const std::string text = read_file_text(text_path, "the calibration text");
  ModelOptions opts;
  opts.load.dequant_to = DType::F32;
  opts.n_threads = threads;
  opts.context_length = max_positions > 0 ? std::min(chunk, max_positions) : chunk;
  auto model = Model::from_file(model_path, opts);
  if (!model->has_tokenizer())
    throw Error(fmt::format("{}: the model has no tokenizer, which Wanda calibration needs (use --prune magnitude)",
                            model_path));
  // Special tokens are parsed: a chat transcript (tests/fixtures/calibration-chat.txt)
  // calibrates the template tokens the model sees in every conversation.
  const std::vector<int32_t> ids = model->tokenizer().encode(text, model->tokenizer().add_bos(), true);
  if (ids.empty()) throw Error(fmt::format("{}: the calibration text yields no tokens", text_path));
  Calibration cal = calibrate_tokens(*model, ids, chunk, hessian_for, threads);
  cal.text_file = text_path;
  cal.text_sha256 = sha256_hex(text);
  return cal;
}

}  // namespace upg::compress
