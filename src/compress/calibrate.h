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

namespace upg {
class Model;
}

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

// Runs `tokens` through `model` in chunks of at most `chunk` tokens (each a fresh
// sequence, capped at the model's context length) with a matmul observer attached.
Calibration calibrate_tokens(Model& model, const std::vector<int32_t>& tokens, int chunk = 512,
                             const HessianFilter& hessian_for = {}, int threads = 0);

// Loads the model (weights as fp32), tokenizes the text file with the model's tokenizer
// and calibrates. `max_positions` (the config's max_position_embeddings, 0 if unknown)
// caps the chunk. Throws upg::Error when the model has no tokenizer or the text yields
// no tokens.
Calibration calibrate_file(const std::string& model_path, const std::string& text_path, int max_positions,
                           int chunk = 512, int threads = 0, const HessianFilter& hessian_for = {});

// The calibration text used when --calib is not given: tests/fixtures/calibration-chat.txt
// (the default model's own chat answers, scripts/make-calibration.py; docs/QUALITY.md
// says why) under the working directory, else under the repository the binary sits in.
std::string default_calibration_path();

}  // namespace upg::compress
