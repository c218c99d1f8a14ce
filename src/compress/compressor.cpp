#include "compress/compressor.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/arch/arch-registry.h"
#include "compress/bit-budget.h"
#include "compress/progress.h"
#include "compress/layerwise.h"
#include "compress/sparsegpt.h"
#include "compress/sha256.h"
#include "upg/io/hf-config-writer.h"
#include "upg/io/atomic-file.h"
#include "upg/io/upg-file.h"
#include "upg/core/file-text.h"
#include "upg/core/error.h"
#include "upg/io/io.h"

namespace upg::compress {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

NameFilter::NameFilter(const std::string& pattern, const std::string& origin) {
  if (pattern.empty()) return;
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &err, &off, nullptr);
  if (!code_) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(fmt::format("{}: '{}' is not a valid regular expression at offset {}: {}", origin, pattern, off,
                            reinterpret_cast<const char*>(msg)));
  }
}

NameFilter::~NameFilter() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool NameFilter::matches(const std::string& name) const {
  if (!code_) return false;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(name.data()), name.size(), 0, 0, md, nullptr);
  pcre2_match_data_free(md);
  return rc >= 0;
}

double sparsegpt_memory_bytes(const ModelConfig& c, int64_t params, int64_t tokens) {
  const double h = c.hidden_size, in = c.intermediate_size;
  const double attn = double(c.num_heads) * (c.head_dim > 0 ? c.head_dim : (c.num_heads > 0 ? h / c.num_heads : 0));
  const double widest = std::max({h, attn, in});
  const double head_dim = c.num_heads > 0 ? attn / c.num_heads : 0;
  const double kv = double(c.num_kv_heads > 0 ? c.num_kv_heads : c.num_heads) * head_dim;
  // The outputs of a layer's pruned weights kept between its passes (LayerMatmuls): q, k,
  // v, o, gate and up.
  const double kept = attn + 2 * kv + h + 2 * in;
  // Per widest input: H and C (fp32), the factorisation (fp64), its factor U (fp32), and
  // with activation order the permuted H and its factor (fp32 each).
  return 28.0 * widest * widest + 2 * 4.0 * double(params) +
         4.0 * double(tokens) * (5 * h + attn + in + widest + kept);
}

EmbeddingStore parse_embedding_store(std::string_view s, std::string_view origin) {
  for (EmbeddingStore e : {EmbeddingStore::Source, EmbeddingStore::Int8, EmbeddingStore::Int4, EmbeddingStore::Int3})
    if (s == embedding_store_name(e)) return e;
  throw Error(fmt::format("{}: '{}' is not an embedding storage (expected source, int8, int4 or int3)", origin, s));
}

const char* embedding_store_name(EmbeddingStore e) {
  switch (e) {
    case EmbeddingStore::Source: return "source";
    case EmbeddingStore::Int8: return "int8";
    case EmbeddingStore::Int4: return "int4";
    case EmbeddingStore::Int3: return "int3";
  }
  return "?";
}

int embedding_bits(EmbeddingStore e) { return e == EmbeddingStore::Int3 ? 3 : e == EmbeddingStore::Int4 ? 4 : 0; }

MatrixOptions embedding_int4_options(int threads, int bits) {
  MatrixOptions eo;
  eo.sparsity = 0;
  eo.values = {.encoding = format::grouped_encoding(bits), .group_size = kEmbeddingInt4Group, .zero_point = true};
  eo.quant = QuantMethod::Clip;
  eo.threads = threads;
  return eo;
}

bool is_compressible(const std::string& name, size_t rank) {
  if (rank != 2 || !name.starts_with("model.layers.")) return false;
  // The projections of any architecture's layout (a fused tensor compresses as a whole).
  for (const ArchSpec* a : all_archs())
    for (const LayerTensor& t : a->layout)
      if (name.ends_with(fmt::format(".{}.weight", t.hf))) return true;
  return false;
}

namespace {

std::string read_optional(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? read_file_text(p.string(), "the tokenizer file") : std::string();
}

// The source's weight files, for the recorded hashes: the GGUF, the one safetensors
// file, or every safetensors shard of a directory (sorted, so the record is stable).
std::vector<fs::path> weight_files(const std::string& source, const std::string& format) {
  std::error_code ec;
  if (!fs::is_directory(source, ec)) return {fs::path(source)};
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(source))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

struct Sources {
  io::UpgHeader header;
  Json source_record;
};

Sources describe_source(const std::string& path, const ModelSource& src) {
  Sources s;
  if (src.format == "gguf") {
    s.header.config_json = io::to_hf_config_json(src.config);
    if (src.tokenizer) {
      s.header.tokenizer_json = to_tokenizer_json(*src.tokenizer);
      s.header.tokenizer_config_json = to_tokenizer_config_json(*src.tokenizer);
    }
  } else {
    std::error_code ec;
    const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
    s.header.config_json = read_file_text((dir / "config.json").string(), "config.json");
    s.header.tokenizer_json = read_optional(dir / "tokenizer.json");
    s.header.tokenizer_config_json = read_optional(dir / "tokenizer_config.json");
  }
  Json files = Json::array();
  for (const fs::path& f : weight_files(path, src.format))
    files.push_back({{"file", f.filename().string()}, {"sha256", sha256_file(f.string())}});
  s.source_record = {{"path", fs::path(path).filename().string()}, {"format", src.format}, {"files", files}};
  return s;
}

// The per-tensor choice of --target-bpw: the budget, the measure, and each tensor's
// setting with the bytes and error that chose it.
Json budget_record(const BudgetPlan& p) {
  Json tensors = Json::object();
  for (const auto& [name, s] : p.settings)
    tensors[name] = {{"setting", s.name}, {"bytes", p.measured.at(name).bytes}, {"error", p.measured.at(name).error}};
  return {{"target_bpw", p.target_bpw},
          {"error", p.calibrated ? "relative squared output error, activation-norm weighted"
                                 : "relative squared weight error"},
          {"error_factors", {{"tied_embedding", kTiedEmbeddingErrorFactor}, {"nm", kNmErrorFactor}}},
          {"budget_bytes", p.budget},
          {"bytes", p.bytes},
          {"total_error", p.total_error},
          {"tensors", tensors}};
}

Json compression_record(const CompressOptions& o, const Json& source, const Calibration* cal,
                        const BudgetPlan* plan) {
  const MatrixOptions& m = o.matrix;
  Json j;
  j["tool"] = kToolVersion;
  j["source"] = source;
  j["prune"] = prune_method_name(o.prune);
  const bool int4 = format::is_grouped(m.values.encoding);
  if (o.gptq)
    j["gptq"] = {{"grid", int4 && !o.dense_int8_linears ? fmt::format("{} groups", m.values.name()) : "int8 per row"},
                 {"act_order", o.act_order},
                 {"lm_head", o.gptq_head}};
  if (o.prune == PruneMethod::SparseGPT || o.gptq)
    j["sparsegpt"] = {{"damp", kSparseGptDamp},
                      {"block", kSparseGptBlock},
                      {"sequential", "input group"},
                      {"asymmetric_blend", kAsymmetricBlend}};
  if (plan) {
    j["pattern"] = j["values"] = "mixed";
    j["mixed_precision"] = budget_record(*plan);
  } else {
    j["pattern"] = m.pattern.name();
    j["sparsity"] = m.pattern.is_nm() ? 1.0 - double(m.pattern.n) / m.pattern.m : m.sparsity;
    j["values"] = m.values.name();
  }
  // Codebook rows always scale by their absmax; the codebook itself is the fit.
  j["quantization"] = m.values.encoding == format::Encoding::Codebook ? "absmax" : quant_method_name(m.quant);
  const std::vector<float> int8_ratios(std::begin(kClipRatios), std::end(kClipRatios)),
      int4_ratios(std::begin(kInt4ClipRatios), std::end(kInt4ClipRatios)),
      low_ratios(std::begin(kLowBitClipRatios), std::end(kLowBitClipRatios));
  if (m.quant == QuantMethod::Clip && plan)
    j["clip_ratios"] = {{"int8", int8_ratios}, {"int4", int4_ratios}, {"int3 and int2", low_ratios}};
  else if (m.quant == QuantMethod::Clip && m.values.encoding != format::Encoding::Codebook)
    j["clip_ratios"] = !int4 ? int8_ratios : m.values.bits() == 4 ? int4_ratios : low_ratios;
  if (int4 && !plan) {
    j["group_size"] = m.values.group_size;
    j["zero_points"] = m.values.zero_point;
  }
  if (m.values.encoding == format::Encoding::Codebook) j["codebook_seed"] = m.seed;
  if (cal)
    j["calibration"] = {{"file", fs::path(cal->text_file).filename().string()},
                        {"sha256", cal->text_sha256},
                        {"tokens", cal->tokens}};
  else
    j["calibration"] = nullptr;
  j["skip"] = o.skip_regex.empty() ? Json(nullptr) : Json(o.skip_regex);
  j["embeddings"] = plan ? "mixed" : embedding_store_name(o.embeddings);
  j["dense_int8_embeddings"] = o.embeddings == EmbeddingStore::Int8;
  j["dense_int8_linears"] = o.dense_int8_linears;
  return j;
}

// A tensor's values as fp32: a view when already fp32, else converted into `buf`.
std::span<const float> as_f32(const TensorView& t, std::vector<float>& buf) {
  if (t.dtype == DType::F32) return {t.as<float>(), size_t(t.numel())};
  buf.resize(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, buf.data(), t.numel());
  return buf;
}

std::span<const std::byte> bytes_of(const auto& v) { return std::as_bytes(std::span(v)); }

// A model too big for SparseGPT's working set is refused up front with the way out,
// instead of being killed for memory mid-run.
void check_sparsegpt_memory(const ModelConfig& c, int64_t params, int64_t tokens, const std::string& source) {
  const double bytes = sparsegpt_memory_bytes(c, params, tokens);
  const double ram = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (ram > 0 && bytes > 0.6 * ram)
    throw Error(fmt::format("{}: sparsegpt would need about {:.1f} GiB for this model (two fp32 copies of "
                            "it, one layer's input Hessians{}), more than 60% of this machine's {:.1f} GiB; prune with "
                            "wanda{}",
                            source, bytes / double(1 << 30), tokens > 0 ? " and the calibration activations" : "",
                            ram / double(1 << 30), tokens > 0 ? " or a shorter calibration text" : ""));
}

void check_budget_options(const CompressOptions& o) {
  if (!std::isfinite(o.target_bpw) || o.target_bpw < 0)
    throw ParamError("target_bpw", fmt::format("{} is not a positive number of bytes per weight", o.target_bpw));
  if (o.target_bpw == 0) return;
  if (o.dense_int8_linears)
    throw ParamError("target_bpw", "the budget chooses every linear's storage; it cannot be combined with dense int8 "
                                   "linears");
  if (o.embeddings != EmbeddingStore::Source)
    throw ParamError("target_bpw", "the budget chooses the embedding's storage; it cannot be combined with an "
                                   "embedding storage");
  if (o.gptq_head) throw ParamError("target_bpw", "the LM head through GPTQ is not offered under a budget");
}

// The embedding or the LM head (one matrix when tied).
bool is_embedding(const std::string& name, size_t rank) {
  return rank == 2 && (name == "model.embed_tokens.weight" || name == "lm_head.weight");
}

// Bytes a tensor takes when written as it is kept (the fallback branch of compress_model).
uint64_t kept_bytes(const TensorView& t, bool was_quantized) {
  return was_quantized && t.dtype == DType::F32 ? uint64_t(t.numel()) * 2 : uint64_t(t.nbytes);
}

}  // namespace

CompressReport compress_model(const CompressOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const MatrixOptions& mo = o.matrix;
  check_matrix_options(mo);
  const bool int4 = format::is_grouped(mo.values.encoding);  // int4, int3 or int2
  const bool budget = o.target_bpw > 0;
  check_budget_options(o);
  if (o.gptq && !budget && mo.values.encoding != format::Encoding::Int8 && !int4)
    throw ParamError("values", fmt::format("GPTQ rounds onto the int8 or a grouped (int4, int3, int2) grid, not {}",
                                           mo.values.name()));
  // Dense int4 prunes nothing, so GPTQ needs no pruning method there.
  const bool prunes = !budget && (mo.pattern.is_nm() || mo.sparsity > 0);
  if (o.gptq && !o.dense_int8_linears && prunes && o.prune != PruneMethod::SparseGPT)
    throw ParamError("gptq", fmt::format("GPTQ runs in SparseGPT's sweep: prune with sparsegpt (not {}) or store "
                                         "dense int8",
                                         prune_method_name(o.prune)));
  if (o.calib_tokens < 0) throw ParamError("calib_tokens", fmt::format("{} is negative", o.calib_tokens));
  if (o.act_order && !o.gptq) throw ParamError("act_order", "activation order is GPTQ's; it needs GPTQ");
  if (o.gptq_head && (!o.gptq || embedding_bits(o.embeddings) == 0))
    throw ParamError("gptq_head", "the LM head goes through GPTQ only with GPTQ and int4 or int3 embeddings");
  if (o.act_order && mo.pattern.is_nm() && !o.dense_int8_linears && !budget)
    throw ParamError("act_order", fmt::format("the {} pattern prunes adjacent columns, which activation order "
                                              "reorders; use the unstructured pattern",
                                              mo.pattern.name()));
  if (o.output.empty()) throw ParamError("output", "no output path");
  // Compression takes minutes: an output path that cannot be written fails now.
  io::prepare_output(o.output);
  const NameFilter skip(o.skip_regex);
  // Under a budget the settings are rounded to nearest unless GPTQ rounds them.
  const bool layerwise = budget ? o.gptq : (o.prune == PruneMethod::SparseGPT && !o.dense_int8_linears) || o.gptq;

  // The as-stored view is only metadata: it tells the config (for calibration) and which
  // GGUF tensors were block-quantized (written as F16, not as the fp32 they load as).
  LoadOptions stored_opts;
  stored_opts.as_stored = true;
  std::map<std::string, DType, std::less<>> stored;
  int max_pos = 0;
  int64_t params = 0;
  {
    ModelSource peek = load_model_source(o.source, stored_opts);
    if (!peek.compressed.empty())
      throw Error(fmt::format("{}: already a compressed UPG file; compress the original model", o.source));
    for (const auto& [name, t] : peek.weights.all()) stored[name] = t.dtype, params += t.numel();
    max_pos = peek.config.max_position_embeddings;
    if (layerwise) check_sparsegpt_memory(peek.config, params, 0, o.source);
  }

  Calibration own_cal;
  const Calibration* cal = nullptr;
  // SparseGPT (and GPTQ) prune and quantize every compressible tensor here, layer by
  // layer, before the file is written (docs/COMPRESSION.md); Wanda only collects its norms.
  std::map<std::string, PrunedTensor, std::less<>> pruned;
  LoadOptions load_opts;
  load_opts.dequant_to = DType::F32;
  load_opts.keep_gguf_qk_rows = false;  // UPG files hold Hugging Face's row order
  // The source as written; under a budget it is read before GPTQ runs, to measure on.
  std::optional<ModelSource> source;
  std::optional<Sources> described;
  auto load_source = [&] {
    if (source) return;
    source.emplace(load_model_source(o.source, load_opts));
    described.emplace(describe_source(o.source, *source));
  };
  // --target-bpw: measure every setting on the source's weights (errors weighted by the
  // calibration text's activation norms when there are any), then choose.
  std::optional<BudgetPlan> plan;
  auto make_plan = [&](const Calibration* norms) {
    load_source();
    const bool tied = !source->weights.contains("lm_head.weight");
    std::vector<PlanTensor> tensors;
    int64_t weights = 0;
    // The rest of the file: the tensors kept as they are and the header, whose tensor
    // index and per-tensor record are estimated generously per tensor.
    const Sources& d = *described;
    uint64_t fixed = 8 + d.header.config_json.size() + d.header.tokenizer_json.size() +
                     d.header.tokenizer_config_json.size() + 4096 +
                     compression_record(o, d.source_record, norms, nullptr).dump(2).size();
    for (const auto& [name, t] : source->weights.all()) {
      weights += t.numel();
      fixed += 4 * (name.size() + 128) + 512;
      const bool embedding = is_embedding(name, t.shape.size());
      if (embedding || (is_compressible(name, t.shape.size()) && !skip.matches(name))) {
        tensors.push_back({name, t, embedding, embedding && tied ? kTiedEmbeddingErrorFactor : 1.0});
        fixed += name.size() + 200;
      } else {
        auto sd = stored.find(name);
        fixed += kept_bytes(t, sd != stored.end() && dtype_is_quantized(sd->second));
      }
    }
    Progress pp(int(tensors.size()), stderr, o.progress_tty);
    plan = plan_budget(tensors, norms, mo, o.target_bpw, fixed, weights, [&](int done, int, const std::string& n) {
      if (!o.quiet) pp.step(done, "measuring " + n);
    });
    if (!o.quiet) pp.finish();
  };
  const bool calibrates = budget ? o.prune != PruneMethod::Magnitude || o.gptq
                                 : (o.prune != PruneMethod::Magnitude && !o.dense_int8_linears) || layerwise;
  if (calibrates) {
    if (o.calibration && !layerwise) {
      cal = o.calibration;
    } else {
      const std::string text = o.calib_path.empty() ? default_calibration_path() : o.calib_path;
      constexpr int kChunk = 512;
      CalibrationInput in = open_calibration(o.source, text, max_pos, kChunk, mo.threads, o.calibration_tokens);
      if (o.calib_tokens > 0 && int64_t(in.tokens.size()) > o.calib_tokens) in.tokens.resize(size_t(o.calib_tokens));
      if (!o.quiet && o.calibration_tokens.empty())
        fmt::print(stderr, "upg: calibrating on {} ({} tokens)\n", text, in.tokens.size());
      if (layerwise) {
        check_sparsegpt_memory(in.model->config(), params, int64_t(in.tokens.size()), o.source);
        const int layers = in.model->config().num_layers;
        LayerwiseOptions lo;
        lo.gptq = o.gptq;
        lo.act_order = o.act_order;
        lo.dense = o.dense_int8_linears;
        if (budget) {
          if (!o.calibration) own_cal = calibrate_tokens(*in.model, in.tokens, kChunk, {}, mo.threads);
          make_plan(o.calibration ? o.calibration : &own_cal);
          lo.setting_for = [&](const std::string& name) { return plan->settings.at(name); };
        }
        Progress lp(layers + (o.gptq_head ? 1 : 0), stderr, o.progress_tty);  // its clock starts here
        if (o.gptq_head) {
          // An untied model's own head, else the embedding it shares.
          lo.head = in.model->source().weights.contains("lm_head.weight") ? "lm_head.weight"
                                                                           : "model.embed_tokens.weight";
          lo.head_options = embedding_int4_options(mo.threads, embedding_bits(o.embeddings));
        }
        const char* what = o.gptq ? (o.dense_int8_linears ? "gptq" : "sparsegpt+gptq") : "sparsegpt";
        pruned = sparsegpt_layerwise(
            *in.model, in.tokens, mo, [&](const std::string& n) { return is_compressible(n, 2) && !skip.matches(n); },
            kChunk,
            [&](int l) {
              if (!o.quiet)
                lp.step(l + 1, l < layers ? fmt::format("{}: layer {} of {}", what, l + 1, layers)
                                          : fmt::format("{}: the LM head", what));
            },
            lo);
        if (!o.quiet) lp.finish();
        own_cal.tokens = int64_t(in.tokens.size());
      } else {
        own_cal = calibrate_tokens(*in.model, in.tokens, kChunk, {}, mo.threads);
      }
      own_cal.text_file = in.text_file;
      own_cal.text_sha256 = in.text_sha256;
      cal = &own_cal;
    }
  }

  if (budget && !plan) make_plan(cal);
  load_source();
  ModelSource& src = *source;
  Sources& s = *described;
  s.header.compression_json = compression_record(o, s.source_record, cal, plan ? &*plan : nullptr).dump(2);

  io::UpgWriter writer(o.output, s.header);
  CompressReport rep;
  rep.source_bytes = src.file_bytes;
  const auto& all = src.weights.all();
  Progress progress(int(all.size()), stderr, o.progress_tty);
  std::vector<float> buf;
  // A weight the layerwise pass compressed, handed over once.
  auto take_pruned = [&](const std::string& name) {
    auto it = pruned.find(name);
    if (it == pruned.end())
      throw Error(fmt::format("{}: tensor '{}': the calibration pass saw no input for it", o.source, name));
    PrunedTensor p = std::move(it->second);
    pruned.erase(it);
    return p;
  };
  int i = 0;
  for (const auto& [name, t] : all) {
    ++i;
    if (!o.quiet) progress.step(i, name);
    TensorReport tr;
    tr.name = name;
    tr.rank = int(t.shape.size());
    tr.weights = t.numel();
    const bool compressible = is_compressible(name, t.shape.size()) && !skip.matches(name);
    const bool embedding = is_embedding(name, t.shape.size());
    // Under a budget each planned tensor has its own setting; else the options say.
    const Setting* planned = nullptr;
    if (plan) {
      auto it = plan->settings.find(name);
      if (it != plan->settings.end()) planned = &it->second, tr.setting = it->second.name;
    }
    const MatrixOptions& tmo = planned ? planned->matrix : mo;
    const bool as_int8 = planned ? planned->dense_int8
                                 : (compressible && o.dense_int8_linears) || (embedding && o.embeddings == EmbeddingStore::Int8);
    if (compressible && !as_int8) {
      MatrixStats st;
      format::CompressedData d;
      if (layerwise) {
        PrunedTensor p = take_pruned(name);
        d = std::move(p.data);
        st = p.stats;
      } else {
        std::span<const float> norms;
        if (cal) {
          auto it = cal->col_norms.find(name);
          if (it == cal->col_norms.end())
            throw Error(fmt::format("{}: tensor '{}': the calibration pass saw no input for it", o.source, name));
          norms = it->second;
        }
        d = compress_matrix(as_f32(t, buf), t.shape[0], t.shape[1], norms, tmo, name, &st);
      }
      writer.add_compressed(name, d);
      tr.layout = format::layout_name(d.layout);
      tr.bytes = d.view().bytes();
      tr.err_sq = st.err_sq, tr.ref_sq = st.ref_sq, tr.kept = st.kept;
    } else if (embedding && !as_int8 && (planned || embedding_bits(o.embeddings) != 0)) {
      MatrixStats st;
      format::CompressedData d;
      if (pruned.contains(name)) {  // the LM head through GPTQ
        PrunedTensor p = take_pruned(name);
        d = std::move(p.data);
        st = p.stats;
      } else {
        const MatrixOptions eo = planned ? tmo : embedding_int4_options(mo.threads, embedding_bits(o.embeddings));
        d = compress_matrix(as_f32(t, buf), t.shape[0], t.shape[1], {}, eo, name, &st);
      }
      writer.add_compressed(name, d);
      tr.layout = format::layout_name(d.layout);
      tr.bytes = d.view().bytes();
      tr.err_sq = st.err_sq, tr.ref_sq = st.ref_sq, tr.kept = st.kept;
    } else if (compressible || (embedding && as_int8)) {
      MatrixStats st;
      DenseInt8 q;
      if (compressible && layerwise) {  // dense GPTQ
        PrunedTensor p = take_pruned(name);
        q = std::move(p.dense);
        st = p.stats;
      } else {
        q = quantize_dense_int8(as_f32(t, buf), t.shape[0], t.shape[1], mo.quant, name, &st, mo.threads);
      }
      writer.add_dense(name + ".qweight", DType::I8, t.shape, bytes_of(q.qweight));
      writer.add_dense(name + ".scales", DType::F32, {t.shape[0]}, bytes_of(q.scales));
      tr.layout = "int8-dense";
      tr.bytes = q.qweight.size() + q.scales.size() * sizeof(float);
      tr.err_sq = st.err_sq, tr.ref_sq = st.ref_sq;
    } else {
      auto sd = stored.find(name);
      const bool was_quantized = sd != stored.end() && dtype_is_quantized(sd->second);
      if (was_quantized && t.dtype == DType::F32) {
        // Dequantized GGUF blocks: F16 holds a 4-8 bit source without loss that matters.
        std::vector<uint16_t> h(size_t(t.numel()));
        const float* f = t.as<float>();
        for (size_t k = 0; k < h.size(); ++k) {
          h[k] = fp32_to_fp16(f[k]);
          const double d = double(f[k]) - double(fp16_to_fp32(h[k]));
          tr.err_sq += d * d;
          tr.ref_sq += double(f[k]) * f[k];
        }
        writer.add_dense(name, DType::F16, t.shape, bytes_of(h));
        tr.bytes = h.size() * 2;
      } else {
        writer.add_dense(name, t.dtype, t.shape, {t.data, t.nbytes});
        tr.bytes = t.nbytes;
      }
      tr.layout = "dense";
    }
    rep.tensors.push_back(std::move(tr));
  }
  if (!o.quiet) progress.finish();
  writer.finish();
  rep.output_bytes = fs::file_size(o.output);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace upg::compress
