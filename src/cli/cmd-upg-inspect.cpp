// upg inspect / upg decompress / upg export: look inside a UPG file, turn it back into a
// standard Hugging Face model directory (config, tokenizer, dense safetensors), or write
// it as a compressed-tensors checkpoint, for other tools.
#include <filesystem>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "upg/core/json.h"
#include "cli/commands.h"
#include "upg/io/atomic-file.h"
#include "io/compressed-tensors-writer.h"
#include "io/dense-int8.h"
#include "io/safetensors-writer.h"
#include "upg/io/upg-file.h"
#include "upg/core/error.h"
#include "upg/format/format.h"
#include "upg/io/io.h"

namespace upg::cli {

namespace {

namespace fs = std::filesystem;

// Weights that decode to a non-zero value. MdCSR padding entries and values quantized to
// zero are stored but count as zero.
int64_t nonzero_weights(const format::CompressedMatrix& m) {
  int64_t n = 0;
  if (format::is_grouped(m.encoding)) {
    std::vector<float> row(size_t(m.cols));
    for (int64_t r = 0; r < m.rows; ++r) {
      format::decode_row(m, r, row.data());
      for (float v : row) n += v != 0.0f;
    }
    return n;
  }
  if (m.layout == format::Layout::NM) {
    for (int8_t v : m.nm.values) n += v != 0;
    return n;
  }
  switch (m.encoding) {
    case format::Encoding::Int8:
      for (int8_t v : m.mdcsr.values) n += v != 0;
      break;
    case format::Encoding::Prime:
      for (uint16_t v : m.mdcsr.prime_indices) n += (v & format::kPrimeIndexMask) != 0;
      break;
    case format::Encoding::Codebook:
      for (uint16_t v : m.mdcsr.prime_indices) n += m.mdcsr.codebook[v] != 0.0f;
      break;
    case format::Encoding::Int4:
    case format::Encoding::Int3:
    case format::Encoding::Int2: break;  // above
  }
  return n;
}

std::string human_bytes(double b) {
  if (b >= 1 << 30) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (b >= 1 << 20) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (b >= 1 << 10) return fmt::format("{:.1f} KiB", b / (1 << 10));
  return fmt::format("{} B", b);
}

void inspect(const std::string& path) {
  const io::UpgHeader h = io::read_upg_header(path);
  const ModelSource src = io::load_upg(path, {});
  const ModelConfig& c = src.config;
  fmt::print("file:         {} ({})\n", path, human_bytes(double(src.file_bytes)));
  fmt::print("upg.version:  2\n");
  fmt::print("config:       {} ({}), {} layers, hidden {}, intermediate {}, heads {} (kv {}), vocab {}\n",
             c.architecture, c.model_type, c.num_layers, c.hidden_size, c.intermediate_size, c.num_heads,
             c.num_kv_heads, c.vocab_size);
  if (src.tokenizer)
    fmt::print("tokenizer:    {} tokens, {} merges, chat template: {}\n", src.tokenizer->vocab.size(),
               src.tokenizer->merges.size(), src.tokenizer->chat_template.empty() ? "no" : "yes");
  else
    fmt::print("tokenizer:    none\n");
  const auto comp = parse_json_or_discard<nlohmann::ordered_json>(h.compression_json.empty() ? "{}" : h.compression_json);
  fmt::print("compression:  {}\n", comp.is_discarded() ? h.compression_json : comp.dump(2));

  fmt::print("\nsparsity = 1 - nonzero weights / (rows x cols); MdCSR padding entries and values quantized to\n"
             "zero count as zero. bytes/weight = stored bytes of every part / (rows x cols).\n\n");
  fmt::print("{:<52} {:<6} {:<11} {:>14} {:>10} {:>8} {:>10} {:>7}\n", "tensor", "layout", "encoding", "shape",
             "entries", "sparsity", "bytes", "B/weight");
  int64_t c_weights = 0, c_nonzero = 0, d_weights = 0;
  uint64_t c_bytes = 0, d_bytes = 0;
  for (const auto& [name, m] : src.compressed) {
    const int64_t weights = m.rows * m.cols, nz = nonzero_weights(m);
    std::string enc = format::encoding_name(m.encoding);
    if (m.layout == format::Layout::NM) enc = fmt::format("{} {}:{}", enc, m.nm.n, m.nm.m);
    if (format::is_grouped(m.encoding))
      enc += fmt::format(" g{}{}", m.int4.group_size, m.int4.group_zeros.empty() ? "" : "z");
    if (m.encoding == format::Encoding::Codebook) enc += fmt::format(":{}", m.mdcsr.codebook.size());
    fmt::print("{:<52} {:<6} {:<11} {:>14} {:>10} {:>8.4f} {:>10} {:>7.3f}\n", name, format::layout_name(m.layout), enc,
               fmt::format("[{}, {}]", m.rows, m.cols), m.entries(), 1.0 - double(nz) / double(weights), m.bytes(),
               double(m.bytes()) / double(weights));
    c_weights += weights;
    c_nonzero += nz;
    c_bytes += m.bytes();
  }
  for (const auto& [name, t] : src.weights.all()) {
    // A dense int8 weight's scales belong to it: bytes, but no weights of their own.
    const int64_t weights = io::is_dense_int8_scales(src.weights, name) ? 0 : t.numel();
    fmt::print("{:<52} {:<6} {:<11} {:>14} {:>10} {:>8} {:>10} {:>7}\n", name, "dense", dtype_name(t.dtype),
               fmt::format("[{}]", fmt::join(t.shape, ", ")), t.numel(), "-", t.nbytes,
               weights ? fmt::format("{:.3f}", double(t.nbytes) / double(weights)) : "-");
    d_weights += weights;
    d_bytes += t.nbytes;
  }
  auto per = [](uint64_t b, int64_t w) { return w ? double(b) / double(w) : 0.0; };
  fmt::print("\ncompressed:   {} tensors, {} weights, {} bytes ({:.3f} bytes/weight, sparsity {:.4f})\n",
             src.compressed.size(), c_weights, c_bytes, per(c_bytes, c_weights),
             c_weights ? 1.0 - double(c_nonzero) / double(c_weights) : 0.0);
  fmt::print("dense:        {} tensors, {} weights, {} bytes ({:.3f} bytes/weight)\n", src.weights.all().size(),
             d_weights, d_bytes, per(d_bytes, d_weights));
  fmt::print("total:        {} weights, {} bytes of tensors ({:.3f} bytes/weight; BF16 would be 2), file {} bytes\n",
             c_weights + d_weights, c_bytes + d_bytes, per(c_bytes + d_bytes, c_weights + d_weights),
             src.file_bytes);
}

// The directory `upg decompress` and `upg export` write: checked before the minutes of
// loading and decoding, then built beside the target under a temporary name and renamed
// when complete, so an interrupted run leaves no half-written model directory.
fs::path checked_output_dir(const std::string& out_dir) {
  fs::path dir = fs::path(out_dir).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "out/" names "out"
  std::error_code ec;
  if (fs::exists(dir, ec) && !(fs::is_directory(dir, ec) && fs::is_empty(dir, ec)))
    throw Error(fmt::format("{}: already exists and is not an empty directory", out_dir));
  io::prepare_output(dir.string(), true);
  return dir;
}

// config.json (with `quantization_config` when given) and the tokenizer files the UPG
// file carries.
void write_config_and_tokenizer(const fs::path& tmp_dir, const std::string& path, const io::UpgHeader& h,
                                const nlohmann::json& quantization_config = nullptr) {
  auto config = parse_json_or_discard<nlohmann::ordered_json>(h.config_json);
  if (!quantization_config.is_null()) {
    if (config.is_discarded() || !config.is_object())
      throw Error(fmt::format("{}: upg.config is not a JSON object; cannot add quantization_config to it", path));
    config["quantization_config"] = quantization_config;
  }
  io::write_file_atomic((tmp_dir / "config.json").string(),
                        config.is_discarded() ? h.config_json : config.dump(2) + "\n");
  if (!h.tokenizer_json.empty()) io::write_file_atomic((tmp_dir / "tokenizer.json").string(), h.tokenizer_json);
  if (!h.tokenizer_config_json.empty())
    io::write_file_atomic((tmp_dir / "tokenizer_config.json").string(), h.tokenizer_config_json);
}

void decompress(const std::string& path, const std::string& out_dir) {
  const fs::path dir = checked_output_dir(out_dir);
  const io::UpgHeader h = io::read_upg_header(path);
  const ModelSource src = io::load_upg(path, {});  // validates every compressed tensor
  io::AtomicDir tmp(dir.string());
  const fs::path tmp_dir = tmp.path();
  write_config_and_tokenizer(tmp_dir, path, h);

  // One entry per original weight: compressed and dense int8 ones become F32, the rest
  // keep their stored dtype.
  std::vector<io::SafetensorsEntry> entries;
  std::vector<std::pair<const TensorView*, const TensorView*>> dense;  // tensor, int8 scales
  for (const auto& [name, m] : src.compressed) entries.push_back({name, DType::F32, {m.rows, m.cols}});
  for (const auto& [name, t] : src.weights.all()) {
    if (io::is_dense_int8_scales(src.weights, name)) continue;
    if (const TensorView* s = io::dense_int8_scales(src.weights, t)) {
      entries.push_back({io::dense_int8_weight_name(name), DType::F32, t.shape});
      dense.emplace_back(&t, s);
    } else {
      entries.push_back({name, t.dtype, t.shape});
      dense.emplace_back(&t, nullptr);
    }
  }
  const size_t n_tensors = entries.size();
  io::SafetensorsWriter w((tmp_dir / "model.safetensors").string(), std::move(entries), {{"format", "pt"}});
  std::vector<float> row;
  // Row by row: only one row of a decompressed matrix is in memory at a time.
  for (const auto& [name, m] : src.compressed) {
    row.resize(size_t(m.cols));
    for (int64_t r = 0; r < m.rows; ++r) {
      format::decode_row(m, r, row.data());
      w.write(name, std::as_bytes(std::span<const float>(row)));
    }
  }
  for (const auto& [t, scales] : dense) {
    if (!scales) {
      w.write(t->name, {t->data, t->nbytes});
      continue;
    }
    const int64_t rows = t->shape[0], cols = t->shape[1];
    row.resize(size_t(cols));
    const std::string name = io::dense_int8_weight_name(t->name);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) row[size_t(c)] = scales->as<float>()[r] * float(t->as<int8_t>()[r * cols + c]);
      w.write(name, std::as_bytes(std::span<const float>(row)));
    }
  }
  w.finish();
  tmp.commit();
  fmt::print(stderr, "upg: wrote {}: {} tensors ({} decompressed to F32), model.safetensors {}\n", out_dir, n_tensors,
             src.compressed.size(), human_bytes(double(w.file_bytes())));
}

void export_compressed_tensors(const std::string& path, const std::string& out_dir) {
  const fs::path dir = checked_output_dir(out_dir);
  const io::UpgHeader h = io::read_upg_header(path);
  const ModelSource src = io::load_upg(path, {});
  const io::CompressedTensorsExport plan(src);  // refuses a form without a counterpart
  io::AtomicDir tmp(dir.string());
  write_config_and_tokenizer(tmp.path(), path, h, plan.quantization_config());
  const uint64_t bytes = plan.write((fs::path(tmp.path()) / "model.safetensors").string());
  tmp.commit();
  fmt::print(stderr, "upg: wrote {} (compressed-tensors): {}; model.safetensors {}\n", out_dir, plan.summary(),
             human_bytes(double(bytes)));
}

}  // namespace

void add_upg_inspect_commands(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  CLI::App* ins = app.add_subcommand("inspect", "Show a UPG file: metadata, every tensor's layout, sparsity and size");
  ins->add_option("file", *file, "UPG file (.upg, or a .safetensors file with upg.version metadata)")->required();
  ins->footer(
      "Prints the format version, the config, the compression record (upg.compression) and one line per\n"
      "tensor: layout (mdcsr, nm or dense), encoding, shape, stored entries, sparsity, bytes and bytes per\n"
      "original weight, then totals. Every compressed tensor is validated first, as `upg run` would.");
  ins->callback([file] { inspect(*file); });

  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* dec = app.add_subcommand("decompress", "Write a UPG file back out as a dense Hugging Face model directory");
  dec->add_option("file", *in, "UPG file to decompress")->required();
  dec->add_option("-o,--output", *out, "Directory to create (must not exist, or be empty)")->required();
  dec->footer(
      "Writes config.json, tokenizer.json, tokenizer_config.json and model.safetensors. Compressed weights\n"
      "are decoded to F32 exactly as the engine sees them (pruned and quantized), dense int8 weights\n"
      "(W.qweight + W.scales) become F32 W, other tensors keep their stored dtype. The directory is\n"
      "built under a temporary name and renamed when complete. transformers loads the result\n"
      "(scripts/check-decompressed.py checks that).");
  dec->callback([in, out] { decompress(*in, *out); });

  auto ex_in = std::make_shared<std::string>();
  auto ex_out = std::make_shared<std::string>();
  auto ex_format = std::make_shared<std::string>("compressed-tensors");
  CLI::App* ex = app.add_subcommand("export", "Write a UPG file as a checkpoint of another format (compressed-tensors)");
  ex->add_option("file", *ex_in, "UPG file to export")->required();
  ex->add_option("-o,--output", *ex_out, "Directory to create (must not exist, or be empty)")->required();
  ex->add_option("--format", *ex_format, "Checkpoint format (default compressed-tensors)")
      ->check(CLI::IsMember({"compressed-tensors"}));
  ex->footer(
      "compressed-tensors: the Hugging Face checkpoint format of the PyPI package compressed-tensors\n"
      "(llm-compressor writes it, vLLM reads it): config.json with quantization_config, model.safetensors,\n"
      "and the tokenizer files. Each weight keeps its values exactly: int4 groups (with or without zero\n"
      "points) become pack-quantized int4 (N:M int4 too, stored dense), dense int8 rows int-quantized\n"
      "int8 per channel, 2:4 int8 sparse-24-bitmask and other sparse int8 sparse-bitmask over int8, float\n"
      "tensors stay as they are. Prime and codebook values have no counterpart, and int3 and int2 are not\n"
      "exported: the command names the first such tensor and writes nothing. `upg run DIR` reads the result back (docs/FORMAT.md 6).");
  ex->callback([ex_in, ex_out] { export_compressed_tensors(*ex_in, *ex_out); });
}

}  // namespace upg::cli
