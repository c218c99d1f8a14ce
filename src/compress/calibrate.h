#pragma once
// Calibration: the L2 norm of every input channel of every matmul (Wanda) and, when asked,
// each input's Hessian X^T X (SparseGPT), collected by the engine's own dense forward pass
// over a calibration text.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compress/hessian.h"
#include "upg/model/model.h"

namespace upg::compress {

struct Calibration {
  // Tensor name -> ||x_j||_2 over every calibration token, one entry per input column.
  std::map<std::string, std::vector<float>, std::less<>> col_norms;
  // Tensor name -> Hessian of its input [cols, cols], symmetric; tensors fed the same
  // input (q, k and v; gate and up) share one. Only for the names asked for.
  std::map<std::string, std::shared_ptr<Hessian>, std::less<>> hessians;
  int64_t tokens = 0;
  std::string text_file;    // where the text came from (empty when given as ids)
  std::string text_sha256;  // of the text's bytes
};

// Which tensors get a Hessian (empty: none). Each costs cols^2 floats of memory and
// tokens * cols^2 / 2 multiply-adds.
using HessianFilter = std::function<bool(const std::string&)>;

// Gathers calibration statistics from matmul inputs, fed by a MatmulObserver: every
// tensor's activation norms, and the Hessian of those `hessian_for` accepts. Tensors fed
// the very same values as the previous Hessian's (k and v after q) share it instead of
// accumulating an identical copy.
class CalibrationCollector {
 public:
  explicit CalibrationCollector(HessianFilter hessian_for = {}, int threads = 0);
  void observe(const LinearWeight& w, const float* x, int64_t n);
  // The statistics (norms from the sums of squares, Hessians mirrored), recording
  // `tokens`; the collector is spent afterwards.
  Calibration finish(int64_t tokens);

 private:
  HessianFilter hessian_for_;
  int threads_;
  std::map<std::string, std::vector<double>, std::less<>> sumsq_;
  std::map<std::string, std::shared_ptr<Hessian>, std::less<>> hessians_;
  std::vector<float> last_x_;
  std::shared_ptr<Hessian> last_h_;
};

// Attaches a matmul observer for its lifetime (also when an exception leaves the scope).
class ObserverScope {
 public:
  ObserverScope(Model& model, MatmulObserver obs);
  ~ObserverScope();
  ObserverScope(const ObserverScope&) = delete;
  ObserverScope& operator=(const ObserverScope&) = delete;

 private:
  Model& model_;
};

// `tokens` in chunks of at most `chunk` (capped at the model's context length), each a
// fresh sequence 0, only its last token asking for logits. Throws on no tokens.
std::vector<Batch> calibration_batches(const Model& model, const std::vector<int32_t>& tokens, int chunk);

// Runs `tokens` through `model` in chunks of at most `chunk` tokens (each a fresh
// sequence, capped at the model's context length) with a matmul observer attached.
Calibration calibrate_tokens(Model& model, const std::vector<int32_t>& tokens, int chunk = 512,
                             const HessianFilter& hessian_for = {}, int threads = 0);

// The calibration model (weights as fp32, context capped at `chunk` or the config's
// max_position_embeddings when smaller and known) and tokens: `ids` when given (tests),
// else the text file tokenized by the model's tokenizer, special tokens read as tokens.
// Throws upg::Error when the model has no tokenizer or the text yields no tokens.
struct CalibrationInput {
  std::unique_ptr<Model> model;
  std::vector<int32_t> tokens;
  std::string text_file, text_sha256;  // empty when given ids
};
CalibrationInput open_calibration(const std::string& model_path, const std::string& text_path, int max_positions,
                                  int chunk = 512, int threads = 0, const std::vector<int32_t>& ids = {});

// The calibration text used when --calib is not given: tests/fixtures/calibration-chat.txt
// (the default model's own chat answers, scripts/make-calibration.py; docs/QUALITY.md
// says why) under the working directory, else under the repository the binary sits in.
std::string default_calibration_path();

}  // namespace upg::compress
