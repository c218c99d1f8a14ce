#pragma once
// io/: turns files into tensors plus typed metadata. Everything above this layer sees
// Hugging Face tensor names and row-major shapes, whatever the file format was.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "upg/core/config.h"
#include "upg/format/format.h"
#include "upg/core/tensor.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg {

struct LoadOptions {
  // GGUF block-quantized tensors stay in their blocks by default: the backend runs them
  // with integer kernels (int8 activations), reading as many bytes per token as the file
  // holds. Set, they are dequantized at load to this type (F32, F16 or BF16): the float
  // path, F32 for bit-for-bit comparisons with fp32 references. Norms and other 1-D
  // tensors are plain floats in every GGUF file and are never block-quantized.
  // F32/F16/BF16 tensors are never converted: they stay zero-copy views into the mmap.
  std::optional<DType> dequant_to;
  // Inspection only (upg info, upg tokenize): every tensor stays a view of the file as
  // stored, block-quantized and (GGUF llama) Q/K-permuted; nothing is converted, so the
  // load costs only the metadata parse. Such weights cannot be run.
  bool as_stored = false;
  // GGUF files of architectures whose converter permuted the Q and K rows (llama.cpp's
  // Llama family) keep those rows as stored, a view of the file with no copy, and the
  // config says RoPE pairs adjacent dims (ModelConfig::rope_interleaved); attention
  // scores are the same either way, as both q and k move alike. Off: the rows are put
  // back in Hugging Face's order (a copy), as the compressor needs for the files it
  // writes and the weights it swaps by name. Partial rotary keeps the copy.
  bool keep_gguf_qk_rows = true;
};

struct ModelSource {
  std::string path;
  std::string format;  // "gguf" or "safetensors"
  ModelConfig config;
  WeightStore weights;  // Hugging Face names, e.g. "model.layers.0.self_attn.q_proj.weight"
  // UPG files and compressed-tensors checkpoints: compressed linear weights by their
  // original name, validated at load and backed by memory that `weights` keeps alive.
  std::map<std::string, format::CompressedMatrix, std::less<>> compressed;
  std::optional<TokenizerSpec> tokenizer;
  // Human-readable facts for `upg info` ("general.name", "file.type", ...), in file order.
  std::vector<std::pair<std::string, std::string>> info;
  uint64_t file_bytes = 0;  // total size of the files read
  // What loads but looks wrong (duplicate vocabulary entries), one line each; front ends
  // show them.
  std::vector<std::string> warnings;
};

// Detects the format: a .gguf file, a .safetensors file (config.json and tokenizer files
// are looked for beside it), or a Hugging Face directory (single or sharded safetensors).
// Throws upg::Error with one line naming the file and what is wrong.
ModelSource load_model_source(const std::string& path, const LoadOptions& opts = {});

// Parses a Hugging Face config.json. Unsupported architectures or rope scaling types are
// rejected here, naming the field.
ModelConfig parse_hf_config(std::string_view config_json, std::string_view origin);

}  // namespace upg
