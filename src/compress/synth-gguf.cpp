// `upg synth --gguf`: random weights of a config's shape as a GGUF file, so llama.cpp runs
// the same shapes as UPG's synthetic files (docs/BENCHMARKS.md, CUDA peer). Keys and
// tensor names are llama.cpp's for the config's architecture (arch registry: gguf_name
// and each layer tensor's GGUF name), values from synth_row as `upg synth` makes them.
#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "compress/ggml-quantize.h"
#include "compress/matrix.h"
#include "compress/synth.h"
#include "upg/io/gguf-types.h"
#include "upg/arch/arch-registry.h"
#include "upg/core/error.h"
#include "upg/core/file-text.h"
#include "upg/io/atomic-file.h"
#include "upg/io/io.h"

namespace upg::compress {

namespace {

// llama.cpp's token types: 1 normal, 3 control.
constexpr int32_t kNormal = 1, kControl = 3;

}  // namespace

void set_gguf_model_keys(io::GgufWriter& w, const std::string& a, const ModelConfig& c) {
  w.set_string("general.architecture", a);
  w.set_string("general.name", "upg synth (random weights)");
  w.set_u32(a + ".context_length", uint32_t(c.max_position_embeddings));
  w.set_u32(a + ".embedding_length", uint32_t(c.hidden_size));
  w.set_u32(a + ".block_count", uint32_t(c.num_layers));
  w.set_u32(a + ".feed_forward_length", uint32_t(c.intermediate_size));
  w.set_u32(a + ".attention.head_count", uint32_t(c.num_heads));
  w.set_u32(a + ".attention.head_count_kv", uint32_t(c.num_kv_heads));
  w.set_u32(a + ".attention.key_length", uint32_t(c.head_dim));
  w.set_u32(a + ".attention.value_length", uint32_t(c.head_dim));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  w.set_f32(a + ".rope.freq_base", c.rope_theta);
  w.set_u32(a + ".rope.dimension_count", uint32_t(float(c.head_dim) * c.partial_rotary_factor));
  if (c.sliding_window > 0) w.set_u32(a + ".attention.sliding_window", uint32_t(c.sliding_window));
}

namespace {

void set_tokenizer_keys(io::GgufWriter& w, const TokenizerSpec& tok) {
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "smollm");  // GPT-2's split, which both engines know
  w.set_string_array("tokenizer.ggml.tokens", tok.vocab);
  std::vector<int32_t> types(tok.vocab.size(), kNormal);
  for (const auto& t : tok.added_tokens) types[size_t(t.id)] = kControl;
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {});
  if (tok.eos_id >= 0) {
    w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.eos_id));
    w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.eos_id));
  }
  w.set_bool("tokenizer.ggml.add_bos_token", false);
}

}  // namespace

CompressReport synth_gguf(const SynthOptions& o, uint32_t ggml_type) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!ggml_type_writable(ggml_type)) throw ParamError("gguf_type", "must be f16, q8_0 or q4_0");
  if (o.output.empty()) throw ParamError("output", "no output path");
  io::prepare_output(o.output);
  if (!(o.std > 0.0f) || !std::isfinite(o.std)) throw Error(fmt::format("synth: std {} must be positive", o.std));
  const ModelConfig cfg = parse_hf_config(read_file_text(o.config_path, "the config"), o.config_path);
  const ArchSpec& arch = find_arch(cfg.architecture, o.config_path);
  if (!arch.gguf_name)
    throw Error(fmt::format("{}: {} has no GGUF architecture of its own to write", o.config_path, cfg.architecture));

  io::GgufWriter w;
  set_gguf_model_keys(w, arch.gguf_name, cfg);
  set_tokenizer_keys(w, byte_tokenizer_spec(cfg.vocab_size));
  const int threads = o.matrix.threads;
  CompressReport rep;
  rep.tensors = synth_each(
      o, synth_tensors(cfg),
      [&](const SynthTensor& t, int64_t rows, int64_t cols, TensorReport& tr) {
        std::vector<uint64_t> ne = {uint64_t(cols)};
        if (t.shape.size() == 2) ne.push_back(uint64_t(rows));
        if (t.kind == SynthTensor::Norm || t.kind == SynthTensor::Bias) {
          std::vector<float> v(size_t(cols), 1.0f);
          if (t.kind == SynthTensor::Bias) synth_row(o.seed, t.name, 0, o.std, v.data(), cols);
          w.add_f32(t.gguf, ne, v);
          tr.bytes = v.size() * 4;
          return;
        }
        if (ggml_type != io::GGML_F16 && cols % 32 != 0)
          throw Error(fmt::format("synth: tensor '{}' has {} columns, not whole blocks of 32", t.gguf, cols));
        const size_t row_bytes = ggml_bytes(ggml_type, cols);
        std::vector<std::byte> data(row_bytes * size_t(rows));
        parallel_rows(rows, threads, [&](int64_t b, int64_t e) {
          std::vector<float> row(static_cast<size_t>(cols));
          for (int64_t r = b; r < e; ++r) {
            synth_row(o.seed, t.name, r, o.std, row.data(), cols);
            quantize_ggml_rows(ggml_type, row.data(), cols, std::span(data).subspan(size_t(r) * row_bytes, row_bytes));
          }
        });
        w.add_tensor(t.gguf, ggml_type, ne, data);
        tr.bytes = data.size();
      },
      true);
  w.write(o.output);
  rep.output_bytes = std::filesystem::file_size(o.output);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace upg::compress
