#include "compress/synth.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/arch/arch-registry.h"
#include "compress/compressor.h"
#include "compress/progress.h"
#include "upg/io/atomic-file.h"
#include "upg/io/upg-file.h"
#include "upg/tokenizer/byte-level.h"
#include "upg/core/file-text.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg::compress {

namespace fs = std::filesystem;

std::vector<SynthTensor> synth_tensors(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size, vocab = c.vocab_size;
  const std::span<const LayerTensor> layout = find_arch(c.architecture).layout;
  std::vector<SynthTensor> t;
  t.push_back({"model.embed_tokens.weight", {vocab, hidden}, SynthTensor::Embedding, "token_embd.weight"});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l), g = fmt::format("blk.{}.", l);
    t.push_back({p + "input_layernorm.weight", {hidden}, SynthTensor::Norm, g + "attn_norm.weight"});
    // q/k/v biases follow the run of weights that carry them, before o_proj.
    std::vector<SynthTensor> biases;
    auto flush = [&] {
      t.insert(t.end(), biases.begin(), biases.end());
      biases.clear();
    };
    for (const LayerTensor& lt : layout) {
      if (!lt.bias) flush();
      if (lt.first == Proj::Gate)
        t.push_back({p + "post_attention_layernorm.weight", {hidden}, SynthTensor::Norm, g + "ffn_norm.weight"});
      const int64_t rows = tensor_rows(c, lt);
      t.push_back({p + lt.hf + ".weight", {rows, proj_shape(c, lt.first).cols}, SynthTensor::Linear,
                   g + lt.gguf + ".weight"});
      if (c.attention_bias && lt.bias)
        biases.push_back({p + lt.hf + ".bias", {rows}, SynthTensor::Bias, g + lt.gguf + ".bias"});
    }
    flush();
  }
  t.push_back({"model.norm.weight", {hidden}, SynthTensor::Norm, "output_norm.weight"});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {vocab, hidden}, SynthTensor::Embedding, "output.weight"});
  return t;
}

TokenizerSpec byte_tokenizer_spec(int vocab_size) {
  if (vocab_size < 256)
    throw Error(fmt::format("synth: vocab_size {} is below the 256 tokens of the byte-level tokenizer", vocab_size));
  TokenizerSpec s;
  for (int b = 0; b < 256; ++b) s.vocab.push_back(tokenizer::bytes_to_byte_level(std::string(1, char(b))));
  if (vocab_size > 256) {
    s.vocab.push_back("<|endoftext|>");
    s.added_tokens.push_back({256, "<|endoftext|>", true});
    s.eos_id = 256;
  }
  // Fillers make every id the model can emit decodable; no merge ever produces them.
  for (int id = int(s.vocab.size()); id < vocab_size; ++id) s.vocab.push_back(fmt::format("<|unused_{}|>", id));
  s.pre_tokenizer = "gpt2";
  s.chat_template =
      "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
      "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
  return s;
}

namespace {

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}


std::span<const std::byte> bytes_of(const auto& v) { return std::as_bytes(std::span(v)); }

}  // namespace

void synth_row(uint64_t seed, const std::string& name, int64_t row, float std, float* out, int64_t n) {
  uint64_t state = seed ^ fnv1a(name) ^ (uint64_t(row) * 0xd1b54a32d192ed03ULL);
  // Box-Muller on 53-bit uniforms: two normals per pair of draws.
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (double(splitmix(state) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    const double u2 = double(splitmix(state) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    out[i] = float(std * r * std::cos(a));
    if (i + 1 < n) out[i + 1] = float(std * r * std::sin(a));
  }
}

std::vector<TensorReport> synth_each(const SynthOptions& o, const std::vector<SynthTensor>& tensors,
                                     const std::function<void(const SynthTensor&, int64_t, int64_t, TensorReport&)>& make,
                                     bool gguf_names) {
  Progress progress(int(tensors.size()), stderr, o.progress_tty);
  std::vector<TensorReport> out;
  int i = 0;
  for (const SynthTensor& t : tensors) {
    if (!o.quiet) progress.step(++i, t.name);
    TensorReport tr;
    tr.name = gguf_names ? t.gguf : t.name;
    tr.rank = int(t.shape.size());
    const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1, cols = t.shape.back();
    tr.weights = rows * cols;
    tr.layout = "dense";
    make(t, rows, cols, tr);
    out.push_back(std::move(tr));
  }
  if (!o.quiet) progress.finish();
  return out;
}

CompressReport synth_model(const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const MatrixOptions& mo = o.matrix;
  check_matrix_options(mo);
  if (o.output.empty()) throw ParamError("output", "no output path");
  // Compression takes minutes: an output path that cannot be written fails now.
  io::prepare_output(o.output);
  if (!(o.std > 0.0f) || !std::isfinite(o.std)) throw Error(fmt::format("synth: std {} must be positive", o.std));

  const std::string config_text = read_file_text(o.config_path, "the config");
  const ModelConfig cfg = parse_hf_config(config_text, o.config_path);
  const TokenizerSpec tok = byte_tokenizer_spec(cfg.vocab_size);

  io::UpgHeader header;
  header.config_json = config_text;
  header.tokenizer_json = to_tokenizer_json(tok);
  header.tokenizer_config_json = to_tokenizer_config_json(tok);
  nlohmann::ordered_json rec;
  rec["tool"] = kToolVersion;
  rec["source"] = {{"synthetic", true},
                   {"config", fs::path(o.config_path).filename().string()},
                   {"seed", o.seed},
                   {"std", o.std},
                   {"tokenizer", "byte-level (256 bytes + <|endoftext|>)"}};
  rec["prune"] = "magnitude";
  rec["pattern"] = mo.pattern.name();
  rec["sparsity"] = mo.pattern.is_nm() ? 1.0 - double(mo.pattern.n) / mo.pattern.m : mo.sparsity;
  rec["values"] = mo.values.name();
  rec["quantization"] = mo.values.encoding == format::Encoding::Codebook ? "absmax" : quant_method_name(mo.quant);
  if (format::is_grouped(mo.values.encoding)) {
    rec["group_size"] = mo.values.group_size;
    rec["zero_points"] = mo.values.zero_point;
  }
  rec["calibration"] = nullptr;
  rec["dense_int8_embeddings"] = o.int8_embeddings;
  header.compression_json = rec.dump(2);

  io::UpgWriter writer(o.output, std::move(header));
  CompressReport rep;
  rep.tensors = synth_each(o, synth_tensors(cfg), [&](const SynthTensor& t, int64_t rows, int64_t cols,
                                                        TensorReport& tr) {
    switch (t.kind) {
      case SynthTensor::Linear: {
        std::vector<float> w(size_t(rows * cols));
        parallel_rows(rows, mo.threads, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) synth_row(o.seed, t.name, r, o.std, w.data() + r * cols, cols);
        });
        MatrixStats st;
        format::CompressedData d = compress_matrix(w, rows, cols, {}, mo, t.name, &st);
        w = {};
        writer.add_compressed(t.name, d);
        tr.layout = format::layout_name(d.layout);
        tr.bytes = d.view().bytes();
        tr.err_sq = st.err_sq, tr.ref_sq = st.ref_sq, tr.kept = st.kept;
        break;
      }
      case SynthTensor::Embedding: {
        if (o.int8_embeddings) {
          std::vector<float> w(size_t(rows * cols));
          parallel_rows(rows, mo.threads, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) synth_row(o.seed, t.name, r, o.std, w.data() + r * cols, cols);
          });
          MatrixStats st;
          const DenseInt8 q = quantize_dense_int8(w, rows, cols, mo.quant, t.name, &st, mo.threads);
          writer.add_dense(t.name + ".qweight", DType::I8, t.shape, bytes_of(q.qweight));
          writer.add_dense(t.name + ".scales", DType::F32, {rows}, bytes_of(q.scales));
          tr.layout = "int8-dense";
          tr.bytes = q.qweight.size() + q.scales.size() * sizeof(float);
          tr.err_sq = st.err_sq, tr.ref_sq = st.ref_sq;
          break;
        }
        // BF16 like a released checkpoint; generated straight into 16-bit rows.
        std::vector<uint16_t> h(size_t(rows * cols));
        parallel_rows(rows, mo.threads, [&](int64_t b, int64_t e) {
          std::vector<float> row(static_cast<size_t>(cols));
          for (int64_t r = b; r < e; ++r) {
            synth_row(o.seed, t.name, r, o.std, row.data(), cols);
            for (int64_t c = 0; c < cols; ++c) h[size_t(r * cols + c)] = fp32_to_bf16(row[size_t(c)]);
          }
        });
        writer.add_dense(t.name, DType::BF16, t.shape, bytes_of(h));
        tr.bytes = h.size() * 2;
        break;
      }
      case SynthTensor::Norm: {
        const std::vector<float> ones(size_t(cols), 1.0f);
        writer.add_dense(t.name, DType::F32, t.shape, bytes_of(ones));
        tr.bytes = ones.size() * 4;
        break;
      }
      case SynthTensor::Bias: {
        std::vector<float> b(static_cast<size_t>(cols));
        synth_row(o.seed, t.name, 0, o.std, b.data(), cols);
        writer.add_dense(t.name, DType::F32, t.shape, bytes_of(b));
        tr.bytes = b.size() * 4;
        break;
      }
    }
  });
  writer.finish();
  rep.output_bytes = fs::file_size(o.output);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace upg::compress
