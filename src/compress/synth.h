#pragma once
// `upg synth`: a model of any supported shape with random weights (normal, std 0.02,
// seeded), compressed as asked and written tensor by tensor, for benchmarks where real
// weights cannot be fetched. Tensors are made and written one at a time, so peak memory
// follows the largest tensor in fp32, not the file (docs/BENCHMARKS.md, "Compression speed").
//
// The file carries a minimal byte-level tokenizer (one token per byte, then
// <|endoftext|> as eos, then <|unused_N|> fillers up to vocab_size) so it is
// self-contained and `upg run` can load it; what it generates is noise.
#include <cstdint>
#include <string>
#include <vector>

#include "compress/matrix.h"
#include "compress/report.h"
#include "upg/core/config.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::compress {

struct SynthOptions {
  std::string config_path;  // a Hugging Face config.json of a supported architecture
  std::string output;
  MatrixOptions matrix;
  uint64_t seed = 0;
  float std = 0.02f;
  int progress_tty = -1;
  bool quiet = false;
};

// Every tensor a model of this config has, with HF names and shapes, in writing order.
struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;
  enum Kind { Linear, Embedding, Norm, Bias } kind;
};
std::vector<SynthTensor> synth_tensors(const ModelConfig& c);

// The byte-level tokenizer described above; throws upg::Error when vocab_size < 256.
TokenizerSpec byte_tokenizer_spec(int vocab_size);

// Fills out[0, n) with normal(0, std) values, a pure function of (seed, name, row): any
// row can be generated alone, in any order or thread.
void synth_row(uint64_t seed, const std::string& name, int64_t row, float std, float* out, int64_t n);

CompressReport synth_model(const SynthOptions& o);

}  // namespace upg::compress
