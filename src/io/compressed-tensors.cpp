#include "io/compressed-tensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "io/hf-json.h"
#include "upg/core/error.h"
#include "upg/format/format.h"

namespace upg::io {

namespace {

using Json = nlohmann::json;

// The parts compressed-tensors adds beside or instead of "<module>.weight".
constexpr std::string_view kParts[] = {
    "weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx", "weight_global_scale",
    "compressed",    "bitmask",      "row_offsets",       "shape",        "input_scale",  "input_zero_point"};

struct QuantArgs {
  int num_bits = 0;
  std::string type, strategy, actorder;
  bool symmetric = true;
  int64_t group_size = 0;
};

struct Scheme {
  std::string name;  // config group, for errors
  std::vector<std::string> targets;
  std::optional<QuantArgs> weights;
  std::string format;  // the group's own, else the top-level one
};

struct Config {
  std::string origin;
  std::vector<Scheme> schemes;
  std::vector<std::string> ignore;
  std::string sparse_format;
  std::vector<std::string> sparse_targets, sparse_ignore;
  bool activations = false;  // some group quantizes input activations
};

std::string str_field(const Json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_string()) throw Error(fmt::format("{}: '{}' must be a string, got {}", where, key, json_brief(*it)));
  return it->get<std::string>();
}

std::vector<std::string> str_list(const Json& obj, const char* key, const std::string& where) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array()) throw Error(fmt::format("{}: '{}' must be a list, got {}", where, key, json_brief(*it)));
  for (const auto& v : *it) {
    if (!v.is_string()) throw Error(fmt::format("{}: '{}' holds {}, expected strings", where, key, json_brief(v)));
    out.push_back(v.get<std::string>());
  }
  return out;
}

QuantArgs parse_args(const Json& w, const std::string& where) {
  if (!w.is_object()) throw Error(fmt::format("{}: must be an object, got {}", where, json_brief(w)));
  QuantArgs a;
  auto int_field = [&](const char* key) -> int64_t {
    auto it = w.find(key);
    if (it == w.end() || it->is_null()) return 0;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > (1 << 30))
      throw Error(fmt::format("{}: '{}' must be a small non-negative integer, got {}", where, key, json_brief(*it)));
    return it->get<int64_t>();
  };
  a.num_bits = int(int_field("num_bits"));
  a.group_size = int_field("group_size");
  a.type = str_field(w, "type", where);
  a.strategy = str_field(w, "strategy", where);
  a.actorder = str_field(w, "actorder", where);
  if (auto it = w.find("symmetric"); it != w.end() && !it->is_null()) {
    if (!it->is_boolean()) throw Error(fmt::format("{}: 'symmetric' must be true or false", where));
    a.symmetric = it->get<bool>();
  }
  return a;
}

Config parse_config(const Json& qc, const std::string& origin) {
  Config c;
  c.origin = origin;
  const std::string where = origin + ": quantization_config";
  const std::string top_format = str_field(qc, "format", where);
  const std::string status = str_field(qc, "quantization_status", where);
  if (!status.empty() && status != "compressed")
    throw Error(fmt::format("{}: quantization_status '{}' is not supported (only 'compressed' checkpoints hold "
                            "quantized weights; save with compression)",
                            where, status));
  c.ignore = str_list(qc, "ignore", where);
  if (auto g = qc.find("config_groups"); g != qc.end() && !g->is_null()) {
    if (!g->is_object()) throw Error(fmt::format("{}: 'config_groups' must be an object", where));
    for (const auto& [name, group] : g->items()) {
      const std::string gw = fmt::format("{}.config_groups.{}", where, name);
      if (!group.is_object()) throw Error(fmt::format("{}: must be an object, got {}", gw, json_brief(group)));
      Scheme s;
      s.name = name;
      s.targets = str_list(group, "targets", gw);
      s.format = str_field(group, "format", gw);
      if (s.format.empty()) s.format = top_format;
      if (auto w = group.find("weights"); w != group.end() && !w->is_null()) s.weights = parse_args(*w, gw + ".weights");
      if (auto a = group.find("input_activations"); a != group.end() && !a->is_null()) c.activations = true;
      c.schemes.push_back(std::move(s));
    }
  }
  if (auto sp = qc.find("sparsity_config"); sp != qc.end() && !sp->is_null()) {
    if (!sp->is_object()) throw Error(fmt::format("{}: 'sparsity_config' must be an object", where));
    const std::string sw = where + ".sparsity_config";
    c.sparse_format = str_field(*sp, "format", sw);
    c.sparse_targets = str_list(*sp, "targets", sw);
    c.sparse_ignore = str_list(*sp, "ignore", sw);
  }
  return c;
}

// compressed-tensors' target rule: "re:<pattern>" is Python's re.match on the module name
// (anchored at the start only), anything else an exact module name or a class name; the
// only class whose modules a file names is "Linear" (its weights are what is stored).
bool matches(const std::string& target, const std::string& module, const std::string& origin) {
  if (target.starts_with("re:")) {
    try {
      return std::regex_search(module, std::regex(target.substr(3)), std::regex_constants::match_continuous);
    } catch (const std::regex_error& e) {
      throw Error(fmt::format("{}: quantization_config target '{}' is not a valid regex: {}", origin, target, e.what()));
    }
  }
  return target == module || target == "Linear";
}

bool any_match(const std::vector<std::string>& targets, const std::string& module, const std::string& origin) {
  return std::any_of(targets.begin(), targets.end(), [&](const std::string& t) { return matches(t, module, origin); });
}

// The config group for `module`, as the package picks it: an exact name before a regex
// before a class name; ignored modules have none.
const Scheme* find_scheme(const Config& c, const std::string& module) {
  if (any_match(c.ignore, module, c.origin)) return nullptr;
  const Scheme* best = nullptr;
  int best_rank = 0;
  for (const Scheme& s : c.schemes)
    for (const std::string& t : s.targets) {
      if (!matches(t, module, c.origin)) continue;
      const int rank = t == module ? 3 : t.starts_with("re:") ? 2 : 1;
      if (rank > best_rank) best = &s, best_rank = rank;
    }
  return best;
}

// One module's tensors and where errors point.
struct Module {
  std::string name;  // "model.layers.0.self_attn.q_proj"
  const WeightStore* store;
  const TensorView* part(std::string_view p) const { return store->find(name + "." + std::string(p)); }
  const TensorView& need(std::string_view p, std::string_view why) const {
    if (const TensorView* t = part(p)) return *t;
    throw Error(fmt::format("{}: module '{}': tensor '{}.{}' is missing ({})", store->source, name, name, p, why));
  }
  [[noreturn]] void fail(const TensorView& t, const std::string& problem) const {
    throw Error(fmt::format("{}: tensor '{}': {}", store->source, t.name, problem));
  }
  void expect(const TensorView& t, std::initializer_list<DType> dtypes, const std::vector<int64_t>& shape) const {
    if (std::find(dtypes.begin(), dtypes.end(), t.dtype) == dtypes.end())
      fail(t, fmt::format("dtype {} is not what this scheme stores", dtype_name(t.dtype)));
    if (t.shape != shape)
      fail(t, fmt::format("shape [{}] does not match the weight (expected [{}])", fmt::join(t.shape, ", "),
                          fmt::join(shape, ", ")));
  }
};

// A "weight_shape" / "shape" part: the dense [rows, cols], stored as [2] or [2, 1].
std::pair<int64_t, int64_t> dense_shape(const Module& m, const TensorView& t) {
  if ((t.dtype != DType::I64 && t.dtype != DType::I32) || t.numel() != 2)
    m.fail(t, fmt::format("must hold the two dimensions as integers, got {} with {} elements", dtype_name(t.dtype),
                          t.numel()));
  int64_t d[2];
  for (int i = 0; i < 2; ++i) d[i] = t.dtype == DType::I64 ? t.as<int64_t>()[i] : t.as<int32_t>()[i];
  for (int64_t v : d)
    if (v < 1 || v >= (int64_t(1) << 31)) m.fail(t, fmt::format("dimension {} is out of range", v));
  return {d[0], d[1]};
}

std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> out(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, out.data(), t.numel());
  return out;
}

// The weight scales of a quantized module: per row and column group, whatever the
// strategy stored ("group": [rows, ceil(cols / G)], "channel": [rows, 1], "tensor": [1]).
struct Scales {
  std::vector<float> v;
  int64_t groups = 1, width = 0;  // width: columns a stored scale covers
  float at(int64_t r, int64_t c) const { return v.size() == 1 ? v[0] : v[size_t(r * groups + c / width)]; }
};

Scales read_scales(const Module& m, const QuantArgs& a, int64_t rows, int64_t cols, const std::string& scheme) {
  const TensorView& t = m.need("weight_scale", "the scheme " + scheme + " quantizes it");
  Scales s;
  s.width = cols;
  if (a.strategy == "group") {
    if (a.group_size < 1) m.fail(t, fmt::format("{}: strategy 'group' without a group_size", scheme));
    s.width = a.group_size;
    s.groups = (cols + a.group_size - 1) / a.group_size;
    m.expect(t, {DType::F32, DType::F16, DType::BF16}, {rows, s.groups});
  } else if (a.strategy == "channel") {
    m.expect(t, {DType::F32, DType::F16, DType::BF16}, {rows, 1});
  } else if (a.strategy == "tensor") {
    if (t.numel() != 1) m.fail(t, fmt::format("strategy 'tensor' stores one scale, not {}", t.numel()));
  } else {
    m.fail(t, fmt::format("{}: weight strategy '{}' is not supported (group, channel or tensor)", scheme, a.strategy));
  }
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    m.fail(t, fmt::format("dtype {} is not a float scale", dtype_name(t.dtype)));
  s.v = to_f32(t);
  for (size_t i = 0; i < s.v.size(); ++i)
    if (!std::isfinite(s.v[i])) m.fail(t, fmt::format("scale [{}] = {} is not finite", i, s.v[i]));
  return s;
}

// Activation-order checkpoints may store weight_g_idx (column -> group). UPG's groups
// are consecutive columns, so only the identity order maps.
void check_g_idx(const Module& m, int64_t cols, int64_t width) {
  const TensorView* g = m.part("weight_g_idx");
  if (!g) return;
  m.expect(*g, {DType::I32}, {cols});
  for (int64_t c = 0; c < cols; ++c)
    if (g->as<int32_t>()[c] != c / width)
      m.fail(*g, fmt::format("column {} is in group {}: activation-order group indices that reorder columns are "
                             "not supported",
                             c, g->as<int32_t>()[c]));
}

struct Rewriter {
  const Config& cfg;
  ModelSource& src;

  std::string weight_name(const Module& m) const { return m.name + ".weight"; }

  // A dense float matrix owned by the store, replacing the module's weight.
  float* add_dense_f32(const Module& m, int64_t rows, int64_t cols) {
    TensorView v;
    v.name = weight_name(m);
    v.dtype = DType::F32;
    v.shape = {rows, cols};
    v.nbytes = size_t(rows * cols) * 4;
    std::byte* p = src.weights.allocate(v.nbytes);
    std::memset(p, 0, v.nbytes);
    v.data = p;
    src.weights.add(std::move(v));
    return reinterpret_cast<float*>(p);
  }

  // Dense int8 rows ("<weight>.qweight" + ".scales"); `codes` null: allocated, returned.
  int8_t* add_dense_i8(const Module& m, int64_t rows, int64_t cols, const Scales& s, const TensorView* codes) {
    TensorView q;
    q.name = weight_name(m) + ".qweight";
    q.dtype = DType::I8;
    q.shape = {rows, cols};
    q.nbytes = size_t(rows * cols);
    std::byte* own = nullptr;
    if (codes) {
      q.data = codes->data;  // zero-copy: int-quantized stores exactly this
    } else {
      own = src.weights.allocate(q.nbytes);
      std::memset(own, 0, q.nbytes);
      q.data = own;
    }
    src.weights.add(std::move(q));
    TensorView sc;
    sc.name = weight_name(m) + ".scales";
    sc.dtype = DType::F32;
    sc.shape = {rows};
    sc.nbytes = size_t(rows) * 4;
    std::byte* sp = src.weights.allocate(sc.nbytes);
    for (int64_t r = 0; r < rows; ++r) reinterpret_cast<float*>(sp)[r] = s.at(r, 0);
    sc.data = sp;
    src.weights.add(std::move(sc));
    return reinterpret_cast<int8_t*>(own);
  }

  void add_compressed(const Module& m, format::CompressedData&& d) {
    auto owner = std::make_shared<format::CompressedData>(std::move(d));
    format::CompressedMatrix view = owner->view();
    format::validate(view, fmt::format("{}: tensor '{}'", src.weights.source, weight_name(m)));
    src.weights.keep_alive(owner);
    src.compressed[weight_name(m)] = view;
  }

  // Only int8 per row (channel) or per tensor, symmetric, maps to UPG's int8 rows.
  void check_int8(const Module& m, const Scheme& s, const TensorView& t) const {
    const QuantArgs& a = *s.weights;
    if (a.num_bits != 8 || a.type != "int" || !a.symmetric || (a.strategy != "channel" && a.strategy != "tensor"))
      m.fail(t, fmt::format("config group '{}' ({} {}-bit {} {} {}): UPG reads int8 values only as symmetric "
                            "per-channel or per-tensor",
                            s.name, s.format, a.num_bits, a.type, a.symmetric ? "symmetric" : "asymmetric",
                            a.strategy));
  }

  void pack_quantized(const Module& m, const Scheme& s) {
    const QuantArgs& a = *s.weights;
    const TensorView& packed = m.need("weight_packed", "pack-quantized");
    if (a.num_bits != 4 || a.type != "int")
      m.fail(packed, fmt::format("config group '{}': pack-quantized {} {}-bit is not supported (UPG reads int4)",
                                 s.name, a.type, a.num_bits));
    // Plain variables, not a structured binding: clang before 16 cannot capture those.
    const auto shape = dense_shape(m, m.need("weight_shape", "pack-quantized"));
    const int64_t rows = shape.first, cols = shape.second;
    m.expect(packed, {DType::I32}, {rows, (cols + 7) / 8});
    const std::string scheme = "config group '" + s.name + "'";
    const Scales sc = read_scales(m, a, rows, cols, scheme);
    check_g_idx(m, cols, sc.width);
    if (!a.symmetric && a.strategy == "tensor")
      m.fail(packed, scheme + ": asymmetric per-tensor int4 is not supported");
    const TensorView* zp = nullptr;
    if (!a.symmetric) {
      zp = &m.need("weight_zero_point", "asymmetric");
      m.expect(*zp, {DType::I32}, {(rows + 7) / 8, sc.groups});
    }
    // The package stores code q + 8 for q in -8..7, eight to an int32 from the low bits,
    // and zero points (zp + 8) packed the same way down the rows: so a UPG code is the
    // stored nibble and a UPG zero the stored zero nibble, w = s * (code - zero).
    auto code = [&](int64_t r, int64_t c) { return int((uint32_t(packed.as<int32_t>()[r * ((cols + 7) / 8) + c / 8]) >> (4 * (c % 8))) & 15); };
    auto zero = [&](int64_t r, int64_t g) {
      if (!zp) return format::kInt4DefaultZero;
      return int((uint32_t(zp->as<int32_t>()[(r / 8) * sc.groups + g]) >> (4 * (r % 8))) & 15);
    };
    // UPG's groups: the file's for "group" (32, 64 or 128), else 128 with the row's (or
    // tensor's) one scale in each.
    const int64_t group = a.strategy == "group" ? a.group_size : 128;
    if (a.strategy == "group" && !format::int4_group_size_ok(int(group)))
      m.fail(packed, fmt::format("{}: group_size {} is not supported (UPG int4 groups are 32, 64 or 128 columns)",
                                 scheme, group));
    const int64_t groups = format::int4_groups(cols, int(group));
    bool fp16_exact = true;
    for (float v : sc.v) fp16_exact = fp16_exact && fp16_to_fp32(fp32_to_fp16(v)) == v;
    if (!fp16_exact) {
      // UPG's int4 scales are fp16; these (fp32) are not: run the weights as dense fp32.
      src.warnings.push_back(fmt::format("{}: tensor '{}': int4 scales do not fit fp16 exactly; loaded as dense fp32",
                                         src.weights.source, packed.name));
      float* w = add_dense_f32(m, rows, cols);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          w[r * cols + c] = sc.at(r, c) * float(code(r, c) - zero(r, a.strategy == "group" ? c / sc.width : 0));
      return;
    }
    format::CompressedData d;
    d.layout = format::Layout::Dense;
    d.encoding = format::Encoding::Int4;
    d.rows = rows;
    d.cols = cols;
    d.group_size = int(group);
    const int64_t row_bytes = format::int4_row_bytes(cols);
    d.q4.assign(size_t(rows * row_bytes), 0);
    d.group_scales.resize(size_t(rows * groups));
    if (zp) d.group_zeros.resize(size_t(rows * groups));
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* row = d.q4.data() + r * row_bytes;
      for (int64_t c = 0; c < cols; ++c) format::set_int4_code(row, c, code(r, c));
      for (int64_t g = 0; g < groups; ++g) {
        d.group_scales[size_t(r * groups + g)] = fp32_to_fp16(sc.at(r, g * group));
        if (zp) d.group_zeros[size_t(r * groups + g)] = uint8_t(zero(r, a.strategy == "group" ? g : 0));
      }
    }
    add_compressed(m, std::move(d));
  }

  void int_quantized(const Module& m, const Scheme& s) {
    const TensorView& w = m.need("weight", "int-quantized");
    if (w.dtype != DType::I8 || w.shape.size() != 2)
      m.fail(w, fmt::format("config group '{}' ({}): expected an I8 [rows, cols] weight, got {}", s.name, s.format,
                            dtype_name(w.dtype)));
    check_int8(m, s, w);
    const Scales sc = read_scales(m, *s.weights, w.shape[0], w.shape[1], "config group '" + s.name + "'");
    const TensorView codes = w;  // the store's entry goes; the view stays valid
    src.weights.remove(w.name);
    add_dense_i8(m, codes.shape[0], codes.shape[1], sc, &codes);
  }

  void sparse(const Module& m, const Scheme* s) {
    const TensorView& vals = m.need("compressed", "bitmask-sparse");
    const TensorView& mask = m.need("bitmask", "bitmask-sparse");
    if (cfg.sparse_format != "sparse-24-bitmask" && cfg.sparse_format != "sparse-bitmask")
      m.fail(vals, fmt::format("sparsity format '{}' is not supported (sparse-bitmask or sparse-24-bitmask)",
                               cfg.sparse_format.empty() ? "(none)" : cfg.sparse_format));
    const bool two_four = cfg.sparse_format == "sparse-24-bitmask";
    const auto shape = dense_shape(m, m.need("shape", "bitmask-sparse"));
    const int64_t rows = shape.first, cols = shape.second;
    const int64_t mask_bytes = (cols + 7) / 8;
    m.expect(mask, {DType::U8}, {rows, mask_bytes});
    auto bit = [&](int64_t r, int64_t c) { return (mask.as<uint8_t>()[r * mask_bytes + c / 8] >> (c % 8)) & 1; };
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < mask_bytes; ++b) {
        uint8_t byte = mask.as<uint8_t>()[r * mask_bytes + b];
        if (b == mask_bytes - 1 && cols % 8) byte &= uint8_t((1u << (cols % 8)) - 1);
        kept += std::popcount(byte);
      }
    if (two_four) {
      if (cols % 4) m.fail(mask, fmt::format("2:4 sparsity needs a multiple of 4 columns, not {}", cols));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; c += 4)
          if (bit(r, c) + bit(r, c + 1) + bit(r, c + 2) + bit(r, c + 3) != 2)
            m.fail(mask, fmt::format("row {} columns {}..{} do not keep exactly 2 of 4", r, c, c + 3));
      m.expect(vals, {vals.dtype}, {rows, cols / 2});
    } else {
      m.expect(vals, {vals.dtype}, {kept});
      if (const TensorView* ro = m.part("row_offsets")) m.expect(*ro, {DType::I64, DType::I32}, {rows});
    }
    // Visits the kept entries in file order: row-major, ascending columns.
    auto for_each = [&](auto&& f) {
      int64_t k = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          if (bit(r, c)) f(r, c, k++);
    };

    if (vals.dtype == DType::F32 || vals.dtype == DType::F16 || vals.dtype == DType::BF16) {
      if (s && s->weights) m.fail(vals, fmt::format("config group '{}' quantizes it, but the values are {}", s->name,
                                                  dtype_name(vals.dtype)));
      // Float values: no UPG sparse layout holds floats, so the dense matrix (exact).
      const std::vector<float> v = to_f32(vals);
      float* w = add_dense_f32(m, rows, cols);
      for_each([&](int64_t r, int64_t c, int64_t k) { w[r * cols + c] = v[size_t(k)]; });
      return;
    }
    if (vals.dtype != DType::I8) m.fail(vals, fmt::format("dtype {} is not supported", dtype_name(vals.dtype)));
    if (!s || !s->weights)
      m.fail(vals, "int8 values but no config group of quantization_config gives their scales");
    if (s->format != "int-quantized" && s->format != "naive-quantized")
      m.fail(vals, fmt::format("config group '{}': format '{}' under sparsity is not supported", s->name, s->format));
    check_int8(m, *s, vals);
    const Scales sc = read_scales(m, *s->weights, rows, cols, "config group '" + s->name + "'");
    const int8_t* v = vals.as<int8_t>();
    const bool has_min = std::find(v, v + vals.numel(), int8_t(-128)) != v + vals.numel();
    if (has_min) {
      // UPG's sparse int8 layouts hold -127..127 (their kernels split magnitude and sign).
      src.warnings.push_back(fmt::format("{}: tensor '{}': int8 value -128 does not fit UPG's sparse int8 "
                                         "layouts; loaded as dense int8",
                                         src.weights.source, vals.name));
      int8_t* q = add_dense_i8(m, rows, cols, sc, nullptr);
      for_each([&](int64_t r, int64_t c, int64_t k) { q[r * cols + c] = v[k]; });
      return;
    }
    std::vector<format::SparseRow> out(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) out[size_t(r)].scale = sc.at(r, 0);
    for_each([&](int64_t r, int64_t c, int64_t k) {
      out[size_t(r)].cols.push_back(uint32_t(c));
      out[size_t(r)].codes.push_back(v[k]);
    });
    add_compressed(m, two_four ? format::encode_nm(cols, out, 2, 4)
                               : format::encode_mdcsr(cols, out, format::Encoding::Int8));
  }

  void module(const Module& m) {
    const Scheme* s = find_scheme(cfg, m.name);
    const bool sparse_part = m.part("compressed") || m.part("bitmask");
    if (sparse_part) {
      if (any_match(cfg.sparse_ignore, m.name, cfg.origin) || !any_match(cfg.sparse_targets, m.name, cfg.origin))
        throw Error(fmt::format("{}: module '{}' stores bitmask-sparse parts but sparsity_config does not target it",
                                src.weights.source, m.name));
      sparse(m, s);
    } else {
      const TensorView* t = m.part("weight_packed");
      if (!t) t = m.part("weight_scale");
      if (!t) t = &m.need("weight", "its parts name it");
      if (!s || !s->weights)
        m.fail(*t, "no config group of quantization_config quantizes this module's weights");
      if (s->format == "pack-quantized")
        pack_quantized(m, *s);
      else if (s->format == "int-quantized" || s->format == "naive-quantized")
        int_quantized(m, *s);
      else
        m.fail(*t, fmt::format("config group '{}': format '{}' is not supported (UPG reads pack-quantized int4, "
                               "int-quantized and naive-quantized int8, sparse-bitmask and sparse-24-bitmask)",
                               s->name, s->format.empty() ? "(none)" : s->format));
    }
    // The parts were copied into UPG's forms (all but int-quantized's codes, which stay
    // views): their file pages go back, so resident memory stays about the file's size.
    for (std::string_view p : kParts)
      if (const TensorView* t = m.part(p)) {
        src.weights.release(t->data, t->nbytes);
        src.weights.remove(t->name);
      }
  }
};

}  // namespace

void apply_compressed_tensors(const nlohmann::json& config, const std::string& origin, ModelSource& src,
                              bool convert) {
  auto qc = config.find("quantization_config");
  if (qc == config.end() || qc->is_null()) return;
  if (!qc->is_object())
    throw Error(fmt::format("{}: 'quantization_config' must be an object, got {}", origin, json_brief(*qc)));
  const std::string method = str_field(*qc, "quant_method", origin + ": quantization_config");
  if (method != "compressed-tensors")
    throw Error(fmt::format("{}: quantization_config.quant_method '{}' is not supported (UPG reads "
                            "'compressed-tensors' checkpoints)",
                            origin, method));
  const Config cfg = parse_config(*qc, origin);

  std::vector<std::string> formats;
  for (const Scheme& s : cfg.schemes)
    if (std::find(formats.begin(), formats.end(), s.format) == formats.end()) formats.push_back(s.format);
  if (!cfg.sparse_format.empty()) formats.push_back(cfg.sparse_format);
  src.info.emplace_back("compressed-tensors", fmt::format("{}", fmt::join(formats, ", ")));
  if (!convert) return;

  // Every module that stores a compressed-tensors part, by name.
  std::set<std::string> modules;
  for (const auto& [name, t] : src.weights.all())
    for (std::string_view p : kParts)
      if (name.size() > p.size() + 1 && name.ends_with(p) && name[name.size() - p.size() - 1] == '.')
        modules.insert(name.substr(0, name.size() - p.size() - 1));
  Rewriter rw{cfg, src};
  for (const std::string& name : modules) rw.module(Module{name, &src.weights});
  if (cfg.activations)
    src.warnings.push_back(fmt::format("{}: quantization_config quantizes input activations; UPG quantizes "
                                       "activations its own way (int8 per 32 columns, dynamic)",
                                       origin));
}

}  // namespace upg::io
