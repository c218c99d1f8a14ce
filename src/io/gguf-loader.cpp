#include "io/gguf-loader.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "upg/arch/arch-registry.h"
#include "io/gguf-config.h"
#include "io/gguf-dequant.h"
#include "io/gguf-names.h"
#include "io/gguf-reader.h"
#include "io/gguf-tokenizer.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

// llama_ftype names for general.file_type.
const char* file_type_name(uint32_t t) {
  switch (t) {
    case 0: return "ALL_F32";
    case 1: return "MOSTLY_F16";
    case 2: return "MOSTLY_Q4_0";
    case 3: return "MOSTLY_Q4_1";
    case 7: return "MOSTLY_Q8_0";
    case 8: return "MOSTLY_Q5_0";
    case 9: return "MOSTLY_Q5_1";
    case 10: return "MOSTLY_Q2_K";
    case 11: return "MOSTLY_Q3_K_S";
    case 12: return "MOSTLY_Q3_K_M";
    case 13: return "MOSTLY_Q3_K_L";
    case 14: return "MOSTLY_Q4_K_S";
    case 15: return "MOSTLY_Q4_K_M";
    case 16: return "MOSTLY_Q5_K_S";
    case 17: return "MOSTLY_Q5_K_M";
    case 18: return "MOSTLY_Q6_K";
    case 32: return "MOSTLY_BF16";
    default: return nullptr;
  }
}

std::vector<std::pair<std::string, std::string>> file_info(const GgufFile& g) {
  std::vector<std::pair<std::string, std::string>> info;
  info.emplace_back("file.format", "GGUF");
  info.emplace_back("file.version", std::to_string(g.version()));
  info.emplace_back("file.tensors", std::to_string(g.tensors().size()));
  for (auto& [k, v] : g.metadata()) {
    if (!k.starts_with("general.")) continue;
    if (k == "general.file_type" && gguf_type_is_integer(v.type)) {
      const char* n = v.bits <= 0xFFFFFFFFu ? file_type_name(uint32_t(v.bits)) : nullptr;
      info.emplace_back("file.type", n ? fmt::format("{} ({})", n, v.bits) : std::to_string(v.bits));
      continue;
    }
    info.emplace_back(k, gguf_value_to_string(v));
  }
  std::map<std::string, int> counts;
  for (auto& t : g.tensors()) ++counts[dtype_name(t.dtype)];
  std::vector<std::pair<std::string, int>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.second > b.second; });
  std::string types;
  for (auto& [n, c] : sorted) types += fmt::format("{}{}: {}", types.empty() ? "" : ", ", n, c);
  info.emplace_back("tensor types", types);
  return info;
}

// Row map that undoes llama.cpp's Q/K permutation, or empty when the tensor is not permuted.
std::vector<int64_t> unpermute_map(const GgufFile& g, const GgufTensorInfo& t, const std::string& hf,
                                   const ModelConfig& c, const ArchSpec& arch) {
  if (!arch.gguf_qk_permuted) return {};
  int64_t n_head = 0;
  if (hf.find(".self_attn.q_proj.") != std::string::npos)
    n_head = c.num_heads;
  else if (hf.find(".self_attn.k_proj.") != std::string::npos)
    n_head = c.num_kv_heads;
  else
    return {};
  // Rows are the outermost dim: ne[1] for a matrix, every element for a bias.
  int64_t rows = t.ne.size() == 1 ? t.ne[0] : t.numel() / t.ne[0];
  try {
    return qk_unpermute_rows(rows, n_head);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: tensor '{}': cannot undo the Q/K permutation: {}", g.path(), t.name, e.what()));
  }
}

}  // namespace

ModelSource load_gguf(const std::string& path, const LoadOptions& opts) { return load_gguf(MappedFile::open(path), opts); }

ModelSource load_gguf(std::shared_ptr<const MappedFile> file, const LoadOptions& opts) {
  const std::string path = file->path();
  if (opts.dequant_to && *opts.dequant_to != DType::F32 && *opts.dequant_to != DType::F16 &&
      *opts.dequant_to != DType::BF16)
    throw Error(fmt::format("{}: cannot dequantize to {} (expected F32, F16 or BF16)", path,
                            dtype_name(*opts.dequant_to)));
  GgufFile g = GgufFile::parse(std::move(file));
  ModelSource src;
  src.path = path;
  src.format = "gguf";
  src.file_bytes = g.file()->size();
  src.config = gguf_model_config(g);
  src.tokenizer = gguf_tokenizer_spec(g);
  src.info = file_info(g);
  WeightStore& ws = src.weights;
  ws.source = path;
  // The mapping's pages go back once what reads them has its own copy: the header,
  // parsed into GgufFile's values (the tokenizer's vocabulary is most of it), a tensor
  // converted here, below, and a weight a backend repacks (Model::from_file).
  const std::shared_ptr<const MappedFile>& mapped = g.file();
  ws.keep_alive(mapped, mapped->data(), mapped->size(),
                [f = mapped.get()](const std::byte* p, size_t n) { f->drop_pages(p, n); });
  ws.release(mapped->data(), g.data_offset());

  const std::string& arch = g.get_string("general.architecture");
  const ArchSpec& spec = find_gguf_arch(arch, path);  // gguf_model_config has checked it
  const bool interleave = spec.gguf_qk_permuted && opts.keep_gguf_qk_rows && !opts.as_stored &&
                          src.config.partial_rotary_factor == 1.0f;
  src.config.rope_interleaved = interleave;
  for (const GgufTensorInfo& t : g.tensors()) {
    std::optional<std::string> hf = gguf_to_hf_name(t.name, arch);
    if (!hf) continue;
    if (ws.contains(*hf))
      throw Error(fmt::format("{}: tensor '{}': maps to '{}', which another tensor already maps to", path, t.name, *hf));
    // Built even when the rows stay, for its check that the heads divide the rows.
    std::vector<int64_t> map = unpermute_map(g, t, *hf, src.config, spec);
    if (interleave) map.clear();
    TensorView v;
    v.name = *hf;
    v.shape = t.shape();
    const bool quantized = dtype_is_quantized(t.dtype);
    // Rows for conversion: a permuted bias moves single elements, everything else whole rows.
    int64_t cols = t.ne[0], rows = t.numel() / t.ne[0];
    if (!map.empty() && t.ne.size() == 1) {
      if (quantized)
        throw Error(fmt::format("{}: tensor '{}': a quantized 1-D Q/K tensor cannot be un-permuted", path, t.name));
      cols = 1;
      rows = t.ne[0];
    }
    // A file with a small general.alignment may leave plain data misaligned for its type.
    const size_t elem_align = quantized ? 1 : size_t(dtype_block_bytes(t.dtype));
    const bool misaligned = reinterpret_cast<uintptr_t>(t.data) % elem_align != 0;
    // Block-quantized 2-D weights stay in their blocks for the integer kernels unless a
    // float type is asked for; Q/K rows un-permuted by copying whole rows of blocks.
    const bool keep_blocks = quantized && !opts.dequant_to && t.ne.size() > 1;
    if (opts.as_stored || (!quantized && map.empty() && !misaligned) || (keep_blocks && map.empty())) {
      v.dtype = t.dtype;
      v.data = t.data;
      v.nbytes = t.nbytes;
    } else {
      v.dtype = keep_blocks || !quantized ? t.dtype : opts.dequant_to.value_or(DType::F32);
      v.nbytes = dtype_bytes(v.dtype, t.numel());
      std::byte* dst = ws.allocate(v.nbytes);
      try {
        convert_rows(t.dtype, t.data, rows, cols, v.dtype, dst, map);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: tensor '{}': {}", path, t.name, e.what()));
      }
      v.data = dst;
      ws.release(t.data, t.nbytes);
    }
    ws.add(std::move(v));
  }
  return src;
}

}  // namespace upg::io
