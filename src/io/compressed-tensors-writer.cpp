// Hand-written on the project's streaming safetensors writer: the compressed-tensors
// package is Python (torch) only, and its layouts are a few packed integer arrays that
// io/compressed-tensors.cpp already reads, so writing them needs no library.
#include "io/compressed-tensors-writer.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <span>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "io/dense-int8.h"
#include "io/safetensors-writer.h"
#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::io {

namespace {

using Json = nlohmann::json;

// The layout of the package release whose files the reader's fixtures come from
// (scripts/fixtures/make-compressed-tensors.py); config.json's "version" says which.
constexpr const char* kFormatVersion = "0.14.0.1";

enum class Form { PackInt4, Int8, Sparse24Int8, BitmaskInt8, Float };

// How one module's weight is quantized: one config group per distinct scheme.
struct Scheme {
  std::string format;  // "pack-quantized" or "int-quantized"
  int bits = 0, group_size = 0;  // group_size 0: per channel
  bool symmetric = true;
  auto key() const { return std::tie(format, bits, group_size, symmetric); }
  bool operator<(const Scheme& o) const { return key() < o.key(); }
};

struct Module {
  std::string name;  // "model.layers.0.mlp.down_proj"; for Float the tensor's own name
  Form form = Form::Float;
  const format::CompressedMatrix* matrix = nullptr;  // compressed forms
  const TensorView* tensor = nullptr;                // dense int8 codes, or a float tensor
  const TensorView* scales = nullptr;                // dense int8 scales
  int64_t rows = 0, cols = 0;
  Scheme scheme;
};

struct Part {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

template <class T>
Part part(std::string name, DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
  Part p{std::move(name), dtype, std::move(shape), {}};
  p.bytes.resize(v.size() * sizeof(T));
  std::memcpy(p.bytes.data(), v.data(), p.bytes.size());
  return p;
}

[[noreturn]] void refuse(const ModelSource& src, const std::string& tensor, const std::string& problem) {
  throw Error(fmt::format("{}: tensor '{}': {}", src.path, tensor, problem));
}

// Row r of an int8 matrix (MdCSR or N:M) as dense codes; `kept` marks the non-zero
// ones, and with `stored` every position the matrix stores (2:4: 2 of every 4, zeros too).
void int8_row(const ModelSource& src, const std::string& tensor, const format::CompressedMatrix& m, int64_t r,
              bool stored, std::vector<int32_t>& codes, std::vector<uint8_t>& kept) {
  codes.assign(size_t(m.cols), 0);
  kept.assign(size_t(m.cols), 0);
  const bool nm = m.layout == format::Layout::NM;
  format::for_each_stored(m, r, [&](int64_t c, int64_t k) {
    const int32_t v = nm ? m.nm.values[size_t(r * m.values_per_row() + k)] : m.mdcsr.values[size_t(k)];
    if (v != 0 && codes[size_t(c)] != 0)
      refuse(src, tensor, fmt::format("row {} stores column {} twice", r, c));
    codes[size_t(c)] += v;
    if (stored || v != 0) kept[size_t(c)] = 1;
  });
}

// Bits c % 8 of byte c / 8, as numpy's packbits(bitorder="little") that the package uses.
void pack_bits(const std::vector<uint8_t>& kept, uint8_t* out) {
  for (size_t c = 0; c < kept.size(); ++c)
    if (kept[c]) out[c / 8] |= uint8_t(1u << (c % 8));
}

std::vector<float> channel_scales(const Module& m) {
  if (m.scales) return {m.scales->as<float>(), m.scales->as<float>() + m.rows};
  return {m.matrix->scales.begin(), m.matrix->scales.end()};
}

// The module's tensors as the package stores them. Called twice: once when planning (for
// the header's shapes, and so that every refusal comes before the first byte) and once
// when writing, so that only one module's parts are in memory at a time.
std::vector<Part> parts(const ModelSource& src, const Module& m) {
  const std::string p = m.name + ".";
  std::vector<Part> out;
  switch (m.form) {
    case Form::Float: return out;  // written from the tensor itself
    case Form::Int8:
      out.push_back({p + "weight", DType::I8, m.tensor->shape, {}});
      out.back().bytes.assign(m.tensor->data, m.tensor->data + m.tensor->nbytes);
      break;
    case Form::PackInt4: {
      // The package's nibble is q + 8 for q in -8..7, eight to an int32 from the low bits
      // (pack_to_int32); so the nibble is UPG's code and the zero nibble UPG's zero point
      // (w = s * (code - zero) both ways). Pruned N:M positions get the code of their
      // group's zero point, which decodes to exactly 0.
      const format::CompressedMatrix& w = *m.matrix;
      const int64_t words = (m.cols + 7) / 8, groups = format::int4_groups(m.cols, w.int4.group_size);
      const int64_t row_bytes = format::int4_row_bytes(w.values_per_row());
      auto zero = [&](int64_t r, int64_t c) {  // of the group of column c
        const int64_t g = r * groups + c / w.int4.group_size;
        return w.int4.group_zeros.empty() ? format::kInt4DefaultZero : int(w.int4.group_zeros[size_t(g)]);
      };
      std::vector<int32_t> packed(size_t(m.rows * words), 0);
      std::vector<int> codes(size_t(m.cols));
      for (int64_t r = 0; r < m.rows; ++r) {
        for (int64_t c = 0; c < m.cols; ++c) codes[size_t(c)] = zero(r, c);
        format::for_each_stored(w, r, [&](int64_t c, int64_t k) {
          codes[size_t(c)] = format::int4_code(w.int4.codes.data() + r * row_bytes, k);
        });
        for (int64_t c = 0; c < m.cols; ++c)
          packed[size_t(r * words + c / 8)] |= int32_t(uint32_t(codes[size_t(c)]) << (4 * (c % 8)));
      }
      out.push_back(part(p + "weight_packed", DType::I32, {m.rows, words}, packed));
      out.push_back(part(p + "weight_shape", DType::I64, {2}, std::vector<int64_t>{m.rows, m.cols}));
      // The written groups (m.scheme.group_size) may split UPG's (see the planning): each
      // repeats its UPG group's scale and zero point.
      const int64_t g_out = m.scheme.group_size, n_out = m.cols / g_out;
      std::vector<uint16_t> scales(size_t(m.rows * n_out));
      for (int64_t r = 0; r < m.rows; ++r)
        for (int64_t g = 0; g < n_out; ++g)
          scales[size_t(r * n_out + g)] = w.int4.group_scales[size_t(r * groups + g * g_out / w.int4.group_size)];
      out.push_back(part(p + "weight_scale", DType::F16, {m.rows, n_out}, scales));
      if (!m.scheme.symmetric) {  // packed down the rows (pack_to_int32 with packed_dim 0)
        std::vector<int32_t> zp(size_t((m.rows + 7) / 8 * n_out), 0);
        for (int64_t r = 0; r < m.rows; ++r)
          for (int64_t g = 0; g < n_out; ++g)
            zp[size_t((r / 8) * n_out + g)] |= int32_t(uint32_t(zero(r, g * g_out)) << (4 * (r % 8)));
        out.push_back(part(p + "weight_zero_point", DType::I32, {(m.rows + 7) / 8, n_out}, zp));
      }
      return out;
    }
    case Form::Sparse24Int8:
    case Form::BitmaskInt8: {
      // The package keeps each row's values in column order; sparse-24 exactly 2 of
      // every 4 (zero values too), the plain bitmask only the non-zero ones.
      const int64_t mask_bytes = (m.cols + 7) / 8;
      std::vector<int8_t> values;
      std::vector<uint8_t> mask(size_t(m.rows * mask_bytes), 0), kept;
      std::vector<int64_t> offsets;
      std::vector<int32_t> codes;
      const bool two_four = m.form == Form::Sparse24Int8;
      for (int64_t r = 0; r < m.rows; ++r) {
        int8_row(src, m.name + ".weight", *m.matrix, r, two_four, codes, kept);
        offsets.push_back(int64_t(values.size()));
        for (int64_t c = 0; c < m.cols; ++c)
          if (kept[size_t(c)]) values.push_back(int8_t(codes[size_t(c)]));
        pack_bits(kept, mask.data() + r * mask_bytes);
      }
      const std::vector<int64_t> shape = {m.rows, m.cols};
      const int64_t n = int64_t(values.size());
      out.push_back(part(p + "compressed", DType::I8, two_four ? std::vector<int64_t>{m.rows, n / m.rows}
                                                               : std::vector<int64_t>{n}, values));
      out.push_back(part(p + "bitmask", DType::U8, {m.rows, mask_bytes}, mask));
      out.push_back(part(p + "shape", DType::I64, two_four ? std::vector<int64_t>{2, 1} : std::vector<int64_t>{2},
                         shape));
      if (!two_four) out.push_back(part(p + "row_offsets", DType::I64, {m.rows}, offsets));
      break;
    }
  }
  out.push_back(part(p + "weight_scale", DType::F32, {m.rows, 1}, channel_scales(m)));
  return out;
}

const char* form_name(Form f) {
  switch (f) {
    case Form::PackInt4: return "pack-quantized";
    case Form::Int8: return "int-quantized";
    case Form::Sparse24Int8: return "sparse-24-bitmask";
    case Form::BitmaskInt8: return "sparse-bitmask";
    case Form::Float: return "dense";
  }
  return "?";
}

Json weight_args(const Scheme& s) {
  // Every field the package's QuantizationArgs serializes, as its own files have them.
  return {{"actorder", nullptr},       {"block_structure", nullptr},
          {"dynamic", false},          {"group_size", s.group_size ? Json(s.group_size) : Json(nullptr)},
          {"num_bits", s.bits},        {"observer", "minmax"},
          {"observer_kwargs", Json::object()}, {"scale_dtype", nullptr},
          {"strategy", s.group_size ? "group" : "channel"}, {"symmetric", s.symmetric},
          {"type", "int"},             {"zp_dtype", s.symmetric ? Json(nullptr) : Json("torch.int8")}};
}

}  // namespace

struct CompressedTensorsExport::Impl {
  const ModelSource& src;
  std::vector<Module> modules;  // by name: compressed and dense int8 first, then floats
  std::vector<SafetensorsEntry> entries;
  std::string sparse_format;  // "" when nothing is stored sparse
  int64_t sparse_weights = 0, sparse_nonzero = 0;
};

CompressedTensorsExport::CompressedTensorsExport(const ModelSource& src) : impl_(new Impl{src, {}, {}, {}, 0, 0}) {
  Impl& s = *impl_;
  auto module_of = [&](const std::string& weight) {
    if (!weight.ends_with(".weight") || weight.size() == 7)
      refuse(src, weight, "compressed-tensors stores a module's quantized weight as '<module>.weight'; this name "
                          "has no module");
    return weight.substr(0, weight.size() - 7);
  };
  bool any_sparse_other = false;
  for (const auto& [name, m] : src.compressed) {
    Module mod{module_of(name), Form::Float, &m, nullptr, nullptr, m.rows, m.cols, {}};
    if (m.encoding == format::Encoding::Int4) {
      // The package decodes whole groups only (its dequantize divides the columns by the
      // scales' count), so a partial last group (576 columns in groups of 128) goes out
      // as the largest groups that divide the columns, which UPG reads back too (32 at
      // least), each with its UPG group's scale: the same weights.
      const int g = int(std::gcd(int64_t(m.int4.group_size), m.cols));
      if (!format::int4_group_size_ok(g))
        refuse(src, name,
               fmt::format("int4 groups of {} over {} columns leave a partial group, which compressed-tensors cannot "
                           "hold, and no group of 32, 64 or 128 columns divides the columns",
                           m.int4.group_size, m.cols));
      mod.form = Form::PackInt4;
      mod.scheme = {"pack-quantized", 4, g, m.int4.group_zeros.empty()};
    } else if (m.encoding == format::Encoding::Int8) {
      const bool two_four = m.layout == format::Layout::NM && m.nm.n == 2 && m.nm.m == 4;
      mod.form = two_four ? Form::Sparse24Int8 : Form::BitmaskInt8;
      any_sparse_other = any_sparse_other || !two_four;
      mod.scheme = {"int-quantized", 8, 0, true};
    } else if (format::is_grouped(m.encoding)) {
      refuse(src, name,
             fmt::format("{} {} values are not exported: compressed-tensors' pack-quantized format holds 3- and "
                         "2-bit groups too, but UPG writes (and reads) only its int4 and int8 forms; compress with "
                         "--values int4 or int8 to export",
                         format::layout_name(m.layout), format::encoding_name(m.encoding)));
    } else {
      refuse(src, name,
             fmt::format("{} {} values have no compressed-tensors counterpart (it stores int4 and int8 values; "
                         "compress with --values int8 or int4 to export)",
                         format::layout_name(m.layout), format::encoding_name(m.encoding)));
    }
    s.modules.push_back(std::move(mod));
  }
  // One sparsity format for the whole file: 2:4 when every sparse module is 2:4, else the
  // plain bitmask, which holds any pattern exactly.
  for (Module& m : s.modules)
    if (m.form == Form::Sparse24Int8 && any_sparse_other) m.form = Form::BitmaskInt8;
  std::vector<Module> floats;
  for (const auto& [name, t] : src.weights.all()) {
    if (is_dense_int8_scales(src.weights, name)) continue;
    if (const TensorView* sc = dense_int8_scales(src.weights, t)) {
      Module mod{module_of(dense_int8_weight_name(name)), Form::Int8, nullptr, &t, sc, t.shape[0], t.shape[1],
                 {"int-quantized", 8, 0, true}};
      s.modules.push_back(std::move(mod));
    } else if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16) {
      floats.push_back({name, Form::Float, nullptr, &t, nullptr, 0, 0, {}});
    } else {
      refuse(src, name, fmt::format("dtype {} has no compressed-tensors counterpart", dtype_name(t.dtype)));
    }
  }
  std::sort(s.modules.begin(), s.modules.end(), [](const Module& a, const Module& b) { return a.name < b.name; });
  for (Module& f : floats) s.modules.push_back(std::move(f));

  for (const Module& m : s.modules) {
    if (m.form == Form::Sparse24Int8 || m.form == Form::BitmaskInt8) {
      s.sparse_format = form_name(m.form);
      s.sparse_weights += m.rows * m.cols;
    }
    if (m.form == Form::Float) s.entries.push_back({m.name, m.tensor->dtype, m.tensor->shape});
    for (Part& p : parts(src, m)) {
      if (m.form == Form::Sparse24Int8 || m.form == Form::BitmaskInt8)
        if (p.name.ends_with(".compressed"))
          for (std::byte b : p.bytes) s.sparse_nonzero += b != std::byte{0};
      s.entries.push_back({std::move(p.name), p.dtype, std::move(p.shape)});
    }
  }
}

CompressedTensorsExport::~CompressedTensorsExport() = default;

Json CompressedTensorsExport::quantization_config() const {
  const Impl& s = *impl_;
  std::map<Scheme, std::vector<std::string>> groups;
  std::vector<std::string> sparse;
  for (const Module& m : s.modules) {
    if (m.form == Form::Float) continue;
    groups[m.scheme].push_back(m.name);
    if (m.form == Form::Sparse24Int8 || m.form == Form::BitmaskInt8) sparse.push_back(m.name);
  }
  if (groups.empty()) return nullptr;
  // The package lists the Linear modules it leaves unquantized; an LM head that is not
  // stored quantized is one (a tied one too: the module exists, sharing the embedding).
  const bool head = std::any_of(s.modules.begin(), s.modules.end(),
                                [](const Module& m) { return m.form != Form::Float && m.name == "lm_head"; });
  const Json ignore = head ? Json::array() : Json::array({"lm_head"});
  Json config_groups = Json::object();
  std::vector<std::string> formats;
  for (const auto& [scheme, targets] : groups) {
    config_groups[fmt::format("group_{}", config_groups.size())] = {
        {"format", scheme.format}, {"input_activations", nullptr}, {"output_activations", nullptr},
        {"targets", targets},      {"weights", weight_args(scheme)}};
    if (std::find(formats.begin(), formats.end(), scheme.format) == formats.end()) formats.push_back(scheme.format);
  }
  Json q = {{"config_groups", config_groups},
            {"format", formats.size() == 1 ? formats[0] : "mixed-precision"},
            {"global_compression_ratio", nullptr},
            {"ignore", ignore},
            {"kv_cache_scheme", nullptr},
            {"quant_method", "compressed-tensors"},
            {"quantization_status", "compressed"},
            {"sparsity_config", Json::object()},
            {"transform_config", Json::object()},
            {"version", kFormatVersion}};
  if (!sparse.empty())
    q["sparsity_config"] = {
        {"format", s.sparse_format},
        // The share of zero weights in the modules stored sparse.
        {"global_sparsity", 1.0 - double(s.sparse_nonzero) / double(s.sparse_weights)},
        {"ignore", ignore},
        {"registry_requires_subclass", false},
        {"sparsity_structure", s.sparse_format == "sparse-24-bitmask" ? "2:4" : "unstructured"},
        {"targets", sparse}};
  return q;
}

uint64_t CompressedTensorsExport::write(const std::string& path) const {
  SafetensorsWriter w(path, impl_->entries, {{"format", "pt"}});
  for (const Module& m : impl_->modules) {
    if (m.form == Form::Float) w.write(m.name, {m.tensor->data, m.tensor->nbytes});
    for (const Part& p : parts(impl_->src, m)) w.write(p.name, p.bytes);
  }
  w.finish();
  return w.file_bytes();
}

std::string CompressedTensorsExport::summary() const {
  std::map<std::string, int> n;
  for (const Module& m : impl_->modules) ++n[form_name(m.form)];
  std::vector<std::string> out;
  for (Form f : {Form::PackInt4, Form::Int8, Form::Sparse24Int8, Form::BitmaskInt8})
    if (n.count(form_name(f))) out.push_back(fmt::format("{} {}", form_name(f), n[form_name(f)]));
  out.push_back(fmt::format("{} dense tensors", n["dense"]));
  return fmt::format("{}", fmt::join(out, ", "));
}

}  // namespace upg::io
