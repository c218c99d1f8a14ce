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
#include <functional>
#include <string>
#include <vector>

#include "compress/matrix.h"
#include "compress/report.h"
#include "upg/core/config.h"
#include "upg/io/gguf-writer.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::compress {

struct SynthOptions {
  std::string config_path;  // a Hugging Face config.json of a supported architecture
  std::string output;
  MatrixOptions matrix;
  uint64_t seed = 0;
  float std = 0.02f;
  // The embedding and LM head as dense per-row int8 (as `upg compress --embeddings int8`)
  // instead of BF16.
  bool int8_embeddings = false;
  int progress_tty = -1;
  bool quiet = false;
};

// Every tensor a model of this config has, with HF names and shapes, in writing order.
struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;
  enum Kind { Linear, Embedding, Norm, Bias } kind;
  std::string gguf;  // its name in llama.cpp's GGUF files
};
std::vector<SynthTensor> synth_tensors(const ModelConfig& c);

// The byte-level tokenizer described above; throws upg::Error when vocab_size < 256.
TokenizerSpec byte_tokenizer_spec(int vocab_size);

// Fills out[0, n) with normal(0, std) values, a pure function of (seed, name, row): any
// row can be generated alone, in any order or thread.
void synth_row(uint64_t seed, const std::string& name, int64_t row, float std, float* out, int64_t n);

CompressReport synth_model(const SynthOptions& o);

// Makes each of `tensors` in turn, with a progress line unless o.quiet: make(t, rows,
// cols, report) fills in what it wrote (report arrives named, shaped, layout "dense").
// Returns the reports in order.
std::vector<TensorReport> synth_each(const SynthOptions& o, const std::vector<SynthTensor>& tensors,
                                     const std::function<void(const SynthTensor&, int64_t, int64_t, TensorReport&)>& make,
                                     bool gguf_names = false);

// The same model as a GGUF file of the config's architecture (llama.cpp's tensor names
// and keys), every weight matrix and embedding in `ggml_type` (F16, Q8_0 or Q4_0), norms
// F32 ones, with the byte-level tokenizer as a GPT-2 style vocabulary: for running
// llama.cpp on the shapes UPG is benchmarked on. o.matrix is not used. Holds the whole
// file in memory until it is written.
CompressReport synth_gguf(const SynthOptions& o, uint32_t ggml_type);
// The model keys of such a file ("<arch>.embedding_length", ...) for a config.
void set_gguf_model_keys(io::GgufWriter& w, const std::string& arch, const ModelConfig& c);

}  // namespace upg::compress
