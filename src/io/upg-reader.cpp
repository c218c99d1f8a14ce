// load_upg: a UPG file (version 2, docs/FORMAT.md) -> ModelSource. The container is
// read by read_safetensors (bounds-checked views into the mmap); this file adds the UPG
// rules: the version, the config and tokenizer, and for each compressed weight listed
// in upg.tensors its parts, their dtypes and shapes, then format::validate on the
// assembled view. Every error names the file and the tensor.
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "upg/core/json.h"
#include "io/hf-json.h"
#include "io/safetensors-reader.h"
#include "upg/io/upg-file.h"
#include "io/upg-parts.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

using Json = nlohmann::json;
namespace k = upg_keys;

const std::string* find_meta(const SafetensorsFile& st, std::string_view key) {
  for (const auto& [mk, mv] : st.metadata)
    if (mk == key) return &mv;
  return nullptr;
}

// Checks upg.version and returns the metadata value `key` ("" when absent).
void check_version(const SafetensorsFile& st, const std::string& path) {
  const std::string* v = find_meta(st, k::kVersionKey);
  if (!v) throw Error(fmt::format("{}: not a UPG file (no '{}' in the safetensors metadata)", path, k::kVersionKey));
  if (*v != k::kVersion)
    throw Error(fmt::format("{}: unsupported UPG version '{}' in '{}' (this build reads version {})", path, *v,
                            k::kVersionKey, k::kVersion));
}

std::string u8_text(const TensorView& t, const std::string& path) {
  if (t.dtype != DType::U8 || t.shape.size() != 1)
    throw Error(fmt::format("{}: tensor '{}' must be U8 [bytes], got {} [{}]", path, t.name, dtype_name(t.dtype),
                            fmt::join(t.shape, ", ")));
  return std::string(reinterpret_cast<const char*>(t.data), t.nbytes);
}

// One upg.tensors entry, read field by field with errors naming the tensor.
struct Entry {
  format::Layout layout;
  format::Encoding encoding;
  int64_t rows = 0, cols = 0, entries = 0;
  int n = 0, m = 0;
  int64_t codebook_size = 0;
  int group_size = 0;  // grouped encodings
  bool zero_points = false;
};

class Loader {
 public:
  Loader(const std::string& path, SafetensorsFile& st, ModelSource& src) : path_(path), st_(st), src_(src) {
    for (auto& t : st_.tensors) by_name_.emplace(t.name, &t);
  }

  std::string what(const std::string& w) const { return fmt::format("{}: tensor '{}'", path_, w); }

  [[noreturn]] void fail(const std::string& w, std::string_view msg) const {
    throw Error(fmt::format("{}: {}", what(w), msg));
  }

  int64_t int_value(const Json& v, const std::string& field, const std::string& w, int64_t lo, int64_t hi) const {
    if (!v.is_number_integer()) fail(w, fmt::format("upg.tensors field '{}' is missing or not an integer", field));
    const bool above = v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(hi) : v.get<int64_t>() > hi;
    if (above || v.get<int64_t>() < lo)
      fail(w, fmt::format("upg.tensors field '{}' = {} is outside {}..{}", field, json_brief(v), lo, hi));
    return v.get<int64_t>();
  }
  int64_t integer(const Json& obj, const char* key, const std::string& w, int64_t lo, int64_t hi) const {
    auto it = obj.find(key);
    return int_value(it == obj.end() ? Json() : *it, key, w, lo, hi);
  }

  std::string string(const Json& obj, const char* key, const std::string& w) const {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) fail(w, fmt::format("upg.tensors field '{}' is missing or not a string", key));
    return it->get<std::string>();
  }

  Entry entry(const std::string& w, const Json& e) const {
    if (!e.is_object()) fail(w, fmt::format("upg.tensors entry must be an object, got {}", e.type_name()));
    Entry r;
    r.layout = format::parse_layout(string(e, "layout", w), what(w));
    r.encoding = format::parse_encoding(string(e, "encoding", w), what(w));
    auto shape = e.find("shape");
    if (shape == e.end() || !shape->is_array() || shape->size() != 2)
      fail(w, "upg.tensors field 'shape' must be [rows, cols]");
    // Bounded so that rows * cols and every part size stay far from int64 overflow.
    constexpr int64_t kMaxDim = int64_t(1) << 31;
    r.rows = int_value((*shape)[0], "shape[0]", w, 1, kMaxDim);
    r.cols = int_value((*shape)[1], "shape[1]", w, 1, kMaxDim);
    r.entries = integer(e, "entries", w, 0, int64_t(UINT32_MAX));
    if (!format::layout_allows(r.layout, r.encoding))
      fail(w, fmt::format("encoding '{}' is not defined for the {} layout", format::encoding_name(r.encoding),
                          format::layout_name(r.layout)));
    if (format::is_grouped(r.encoding)) {
      r.group_size = int(integer(e, "group_size", w, 1, 1 << 20));
      if (!format::int4_group_size_ok(r.group_size))
        fail(w, fmt::format("upg.tensors field 'group_size' = {} (expected 32, 64 or 128)", r.group_size));
      auto z = e.find("zero_points");
      if (z == e.end() || !z->is_boolean()) fail(w, "upg.tensors field 'zero_points' is missing or not a boolean");
      r.zero_points = z->get<bool>();
    }
    if (r.layout == format::Layout::Dense && r.entries != r.rows * r.cols)
      fail(w, fmt::format("upg.tensors entries {} disagree with shape [{}, {}] ({} expected)", r.entries, r.rows, r.cols,
                          r.rows * r.cols));
    if (r.layout == format::Layout::NM) {
      r.m = int(integer(e, "m", w, 2, 16));
      r.n = int(integer(e, "n", w, 1, r.m - 1));
      if (r.m != 2 && r.m != 4 && r.m != 8 && r.m != 16) fail(w, fmt::format("N:M with M = {} (expected 2, 4, 8 or 16)", r.m));
      if (r.cols % r.m != 0) fail(w, fmt::format("cols {} is not a multiple of M = {}", r.cols, r.m));
      if (r.entries != format::nm_values_per_row(r.cols, r.n, r.m) * r.rows)
        fail(w, fmt::format("upg.tensors entries {} disagree with shape [{}, {}] at {}:{} ({} expected)", r.entries,
                            r.rows, r.cols, r.n, r.m, format::nm_values_per_row(r.cols, r.n, r.m) * r.rows));
    }
    if (r.encoding == format::Encoding::Codebook)
      r.codebook_size = integer(e, "codebook_size", w, 1, format::kMaxCodebookSize);
    return r;
  }

  // The part "<w><suffix>", checked for dtype and shape, aligned for its element type.
  template <class T>
  std::span<const T> part(const std::string& w, const char* suffix, DType dtype, std::vector<int64_t> shape) {
    const std::string name = w + suffix;
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail(w, fmt::format("missing part '{}'", name));
    TensorView& t = *it->second;
    if (t.dtype != dtype)
      fail(w, fmt::format("part '{}' is {}, expected {}", name, dtype_name(t.dtype), dtype_name(dtype)));
    if (t.shape != shape)
      fail(w, fmt::format("part '{}' has shape [{}] but the weight's shape and entry count need [{}]", name,
                          fmt::join(t.shape, ", "), fmt::join(shape, ", ")));
    align(t);
    consumed_.insert(name);
    return {reinterpret_cast<const T*>(t.data), t.nbytes / sizeof(T)};
  }

  format::CompressedMatrix matrix(const std::string& w, const Entry& e) {
    if (by_name_.count(w)) fail(w, "is stored both dense and compressed");
    format::CompressedMatrix c;
    c.layout = e.layout;
    c.encoding = e.encoding;
    c.rows = e.rows;
    c.cols = e.cols;
    if (const int bits = format::grouped_bits(e.encoding)) {
      // Shapes from the entry's fields; validate() then checks them against the layout.
      const int64_t values = e.layout == format::Layout::NM ? format::nm_values_per_row(e.cols, e.n, e.m) : e.cols;
      const int64_t groups = format::int4_groups(e.cols, e.group_size);
      c.int4.group_size = e.group_size;
      c.int4.codes = part<uint8_t>(w, k::grouped_codes_part(bits), DType::U8,
                                   {e.rows, format::grouped_row_bytes(bits, values)});
      c.int4.group_scales = part<uint16_t>(w, k::kGroupScales, DType::F16, {e.rows, groups});
      if (e.zero_points) c.int4.group_zeros = part<uint8_t>(w, k::kGroupZeros, DType::U8, {e.rows, groups});
    } else {
      c.scales = part<float>(w, k::kScales, DType::F32, {e.rows});
    }
    if (e.layout == format::Layout::MdCsr) {
      c.mdcsr.row_pointers = part<uint32_t>(w, k::kRowPointers, DType::U32, {e.rows + 1});
      c.mdcsr.delta_indices = part<uint8_t>(w, k::kDeltaIndices, DType::U8, {e.entries});
      if (e.encoding == format::Encoding::Int8) {
        c.mdcsr.values = part<int8_t>(w, k::kValues, DType::I8, {e.entries});
      } else {
        c.mdcsr.prime_indices = part<uint16_t>(w, k::kPrimeIndices, DType::U16, {e.entries});
        if (e.encoding == format::Encoding::Codebook)
          c.mdcsr.codebook = part<float>(w, k::kCodebook, DType::F32, {e.codebook_size});
      }
    } else if (e.layout == format::Layout::NM) {
      c.nm.n = e.n;
      c.nm.m = e.m;
      if (e.encoding == format::Encoding::Int8)
        c.nm.values = part<int8_t>(w, k::kNmValues, DType::I8, {e.rows, format::nm_values_per_row(e.cols, e.n, e.m)});
      c.nm.positions = part<uint8_t>(w, k::kNmPositions, DType::U8,
                                     {e.rows, format::nm_position_bytes_per_row(e.cols, e.n, e.m)});
    }
    // A part of another layout or encoding would otherwise surface as a stray dense tensor.
    for (const char* suffix : k::kAllParts) {
      const std::string name = w + suffix;
      if (by_name_.count(name) && !consumed_.count(name))
        fail(w, fmt::format("part '{}' does not belong to layout {} with encoding {}", name,
                            format::layout_name(e.layout), format::encoding_name(e.encoding)));
    }
    format::validate(c, what(w));
    if (format::is_grouped(c.encoding)) src_.weights.release(c.int4.codes.data(), c.int4.codes.size_bytes());
    return c;
  }

  void compressed(const std::string& tensors_json) {
    const Json j = parse_json<Json>(tensors_json, fmt::format("{}: '{}'", path_, k::kTensorsKey));
    if (!j.is_object())
      throw Error(fmt::format("{}: '{}' must be a JSON object of weight name -> entry, got {}", path_, k::kTensorsKey,
                              j.type_name()));
    for (const auto& [w, e] : j.items()) src_.compressed.emplace(w, matrix(w, entry(w, e)));
  }

  void tokenizer() {
    auto tok = by_name_.find(k::kTokenizerTensor);
    auto cfg = by_name_.find(k::kTokenizerConfigTensor);
    if (cfg != by_name_.end()) consumed_.insert(cfg->first);
    if (tok == by_name_.end()) {
      if (cfg != by_name_.end())
        throw Error(fmt::format("{}: tensor '{}' without '{}'", path_, k::kTokenizerConfigTensor, k::kTokenizerTensor));
      return;
    }
    consumed_.insert(tok->first);
    const std::string cfg_text = cfg == by_name_.end() ? std::string() : u8_text(*cfg->second, path_);
    src_.tokenizer = parse_tokenizer_json(u8_text(*tok->second, path_), cfg_text,
                                          fmt::format("{}: {}", path_, k::kTokenizerTensor));
  }

  void dense() {
    for (auto& t : st_.tensors) {
      if (consumed_.count(t.name)) continue;
      align(t);
      src_.weights.add(t);
    }
  }

 private:
  // A hand-written file may not order tensors by alignment; such a view is copied so
  // typed access stays defined (our writer never needs this).
  void align(TensorView& t) {
    const auto a = uintptr_t(dtype_block_bytes(t.dtype));
    if (reinterpret_cast<uintptr_t>(t.data) % a == 0) return;
    std::byte* copy = src_.weights.allocate(t.nbytes);
    std::memcpy(copy, t.data, t.nbytes);
    t.data = copy;
  }

  const std::string& path_;
  SafetensorsFile& st_;
  ModelSource& src_;
  std::map<std::string, TensorView*, std::less<>> by_name_;
  std::set<std::string, std::less<>> consumed_;
};

// "pattern=2:4 prune=wanda ..." from the scalar fields of upg.compression.
std::string compression_summary(const std::string& text) {
  const Json j = parse_json_or_discard<Json>(text);
  if (!j.is_object()) return "(not a JSON object)";
  std::vector<std::string> parts;
  for (const auto& [key, v] : j.items()) {
    if (v.is_structured()) continue;
    std::string s = v.is_string() ? v.get<std::string>() : v.dump();
    if (s.size() > 40) continue;  // hashes and calibration text belong to `upg inspect`
    parts.push_back(key + "=" + s);
  }
  return parts.empty() ? "(none)" : fmt::format("{}", fmt::join(parts, " "));
}

}  // namespace

UpgHeader read_upg_header(const std::string& path) {
  SafetensorsFile st = read_safetensors(path);
  check_version(st, path);
  UpgHeader h;
  if (const std::string* v = find_meta(st, k::kConfigKey)) h.config_json = *v;
  if (const std::string* v = find_meta(st, k::kCompressionKey)) h.compression_json = *v;
  for (const auto& t : st.tensors) {
    if (t.name == k::kTokenizerTensor) h.tokenizer_json = u8_text(t, path);
    if (t.name == k::kTokenizerConfigTensor) h.tokenizer_config_json = u8_text(t, path);
  }
  return h;
}

bool is_upg_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char len[8];
  if (!in.read(reinterpret_cast<char*>(len), 8)) return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | len[i];
  if (n < 2 || n > kSafetensorsMaxHeader) return false;
  std::string text(n, '\0');
  if (!in.read(text.data(), std::streamsize(n))) return false;
  const Json j = parse_json_or_discard<Json>(text);
  if (!j.is_object()) return false;
  auto meta = j.find("__metadata__");
  return meta != j.end() && meta->is_object() && meta->contains(k::kVersionKey);
}

ModelSource load_upg(const std::string& path, const LoadOptions& opts) { return load_upg(MappedFile::open(path), opts); }

ModelSource load_upg(std::shared_ptr<MappedFile> file, const LoadOptions& opts) {
  const std::string path = file->path();
  SafetensorsFile st = read_safetensors(std::move(file));
  check_version(st, path);
  ModelSource src;
  src.path = path;
  src.format = "upg";
  src.weights.source = path;
  src.file_bytes = st.file->size();

  const std::string* config = find_meta(st, k::kConfigKey);
  if (!config) throw Error(fmt::format("{}: '{}' is missing from the metadata", path, k::kConfigKey));
  src.config = parse_hf_config(*config, fmt::format("{}: {}", path, k::kConfigKey));
  const std::string* tensors = find_meta(st, k::kTensorsKey);
  if (!tensors) throw Error(fmt::format("{}: '{}' is missing from the metadata", path, k::kTensorsKey));

  // The mapping's pages may go back once something holds its own copy of them: int4
  // codes after validation (the backend reads them again to copy them into its form, one
  // weight at a time, and gives them back after), so a load never holds the whole file
  // and every copy at once.
  const std::shared_ptr<MappedFile>& mapped = st.file;
  src.weights.keep_alive(mapped, mapped->data(), mapped->size(),
                         [f = mapped.get()](const std::byte* p, size_t n) { f->drop_pages(p, n); });
  Loader loader(path, st, src);
  loader.tokenizer();
  loader.compressed(*tensors);
  loader.dense();

  int64_t mdcsr = 0, nm = 0;
  for (const auto& [name, m] : src.compressed) (m.layout == format::Layout::NM ? nm : mdcsr) += 1;
  const std::string* compression = find_meta(st, k::kCompressionKey);
  src.info = {{"format", "upg"},
              {k::kVersionKey, k::kVersion},
              {"compression", compression ? compression_summary(*compression) : "(none)"},
              {"compressed.mdcsr", std::to_string(mdcsr)},
              {"compressed.nm", std::to_string(nm)},
              {"dense tensors", std::to_string(src.weights.all().size())},
              {"bytes", std::to_string(src.file_bytes)}};
  return src;
}

}  // namespace upg::io
