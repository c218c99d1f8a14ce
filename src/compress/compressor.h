#pragma once
// `upg compress`: a model source (HF directory, safetensors file or GGUF) to one UPG file,
// tensor by tensor, so memory stays near one tensor beyond the source's own mapping.
#include <string>
#include <string_view>

#include "upg/core/config.h"
#include "upg/core/version.h"
#include "compress/calibrate.h"
#include "compress/matrix.h"
#include "compress/report.h"

namespace upg::compress {

inline constexpr const char* kToolVersion = kVersion;

// Source: as in the source (F16 for a GGUF's quantized blocks). Int8: dense per-row int8.
// Int4: dense int4, groups of kEmbeddingInt4Group columns with zero points, the finest int4
// grid, as this matrix is both the first and the last layer of a tied model (llama.cpp's
// Q4_0 keeps it at 8 bits: Q8_0). Int3: the same grid at 3 bits, for the smallest files.
enum class EmbeddingStore { Source, Int8, Int4, Int3 };
inline constexpr int kEmbeddingInt4Group = 32;
EmbeddingStore parse_embedding_store(std::string_view s, std::string_view origin = "--embeddings");
const char* embedding_store_name(EmbeddingStore e);
int embedding_bits(EmbeddingStore e);  // 4 or 3 for the grouped stores, else 0
// The grouped grid of EmbeddingStore::Int4 / Int3 (dense, kEmbeddingInt4Group, zero
// points, clip) at `bits` bits.
MatrixOptions embedding_int4_options(int threads, int bits = 4);

struct CompressOptions {
  std::string source;
  std::string output;
  MatrixOptions matrix;  // pattern, sparsity, values, quantization, threads
  PruneMethod prune = PruneMethod::Magnitude;
  std::string calib_path;  // Wanda calibration text; empty: default_calibration_path()
  // At most this many calibration tokens, the text's first (0: all). SparseGPT's time is
  // mostly products and Hessians over them.
  int64_t calib_tokens = 0;
  std::string skip_regex;  // decoder weights whose name matches stay dense
  // How the embedding and the LM head (one matrix when tied, a large share of a small
  // model's weights: 28M of SmolLM2-135M's 135M) are stored.
  EmbeddingStore embeddings = EmbeddingStore::Source;
  // Every decoder linear as dense per-row int8 too, nothing pruned: the dense int8
  // baseline each sparse file is measured against (`upg compress --dense-int8`).
  bool dense_int8_linears = false;
  // GPTQ: the int8 values rounded in SparseGPT's sweep with their error compensated
  // (compress/gptq.h): with SparseGPT pruning, pruning and rounding together; with
  // dense_int8_linears, every linear dense int8 through GPTQ. `act_order` sweeps the
  // input channels by decreasing energy.
  bool gptq = false;
  bool act_order = false;
  // With gptq and embeddings Int4: the LM head (the embedding, when tied) through GPTQ
  // too, on the final norm's output over the calibration text (compress/layerwise.h).
  bool gptq_head = false;
  // When > 0: the file at most this many bytes per weight (its size over every weight, as
  // `upg inspect` and docs/QUALITY.md count them). Each decoder linear and the embedding /
  // LM head then get their own setting (compress/bit-budget.h: dense int8, int4 in groups
  // of 32/64/128, 2:4 int4), chosen by measured error; `matrix` gives only quantization
  // and threads, and `embeddings` must stay Source and `dense_int8_linears` off. With
  // gptq the chosen settings are rounded by GPTQ, else to nearest.
  double target_bpw = 0;
  // Precomputed activation norms for Wanda (tests, or a caller compressing several
  // variants); when null they are collected from calib_path. SparseGPT ignores it: it
  // calibrates layer by layer on the model it prunes.
  const Calibration* calibration = nullptr;
  // Calibration token ids instead of the tokenized calib_path (tests: a model without a
  // tokenizer).
  std::vector<int32_t> calibration_tokens;
  int progress_tty = -1;  // Progress mode: -1 detect, 0 lines, 1 bar
  bool quiet = false;     // no progress output at all
};

// Whether a tensor is compressed: a 2-D linear weight of a decoder layer, a projection
// tensor of some architecture's layout (model.layers.N.self_attn.q_proj.weight, ...).
bool is_compressible(const std::string& name, size_t rank);

// Memory --prune sparsegpt needs beyond the file mappings (docs/COMPRESSION.md): the
// calibration model and the source as fp32 (`params` weights each), the Hessian, cross
// term and factorisation of the widest input group (28 cols^2 bytes), and per calibration
// token three residual streams, one layer's matmul inputs in the source model (the
// attention input, the attention output, the MLP input and the MLP's inner activations)
// and the widest group's input in the compressed model. compress_model
// refuses a model that would need more than 60% of the machine's memory, naming
// --prune wanda as the way out: first before loading anything (`tokens` = 0), again once
// the calibration text is tokenized.
double sparsegpt_memory_bytes(const ModelConfig& c, int64_t params, int64_t tokens = 0);

// Writes opts.output (through a temp file renamed at the end) and returns the report.
// Throws upg::Error on bad options or inputs; a failed run leaves no output file.
CompressReport compress_model(const CompressOptions& opts);

// PCRE2 search (not anchored) of `pattern` in names; throws upg::Error naming the option
// when the pattern does not compile.
class NameFilter {
 public:
  explicit NameFilter(const std::string& pattern, const std::string& origin = "--skip");
  ~NameFilter();
  NameFilter(const NameFilter&) = delete;
  NameFilter& operator=(const NameFilter&) = delete;
  bool matches(const std::string& name) const;  // false for an empty pattern

 private:
  void* code_ = nullptr;
};

}  // namespace upg::compress
