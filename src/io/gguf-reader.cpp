#include "io/gguf-reader.h"

#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "io/data-regions.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

constexpr uint32_t kMaxAlignment = 1u << 16;
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;
// Smallest encodings, used to bound counts by the bytes left before anything is reserved.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset

// Names from files may hold control bytes; keep error messages on one line.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200)) {
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += char(c);
  }
  if (s.size() > 200) out += "...";
  return out;
}

uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;   // the length prefix at least
    case GgufType::ARRAY: return 12;   // element type + count at least
  }
  return 0;
}

bool is_signed(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 || t == GgufType::INT64;
}

class Cursor {
 public:
  Cursor(const MappedFile& f) : f_(f) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return f_.size() - pos_; }
  std::string ctx;  // "metadata key 'x'" etc., prefixed to messages

  [[noreturn]] void fail(const std::string& msg) const {
    throw Error(ctx.empty() ? fmt::format("{}: {}", f_.path(), msg) : fmt::format("{}: {}: {}", f_.path(), ctx, msg));
  }
  void need(uint64_t n, std::string_view what) const {
    if (n > left())
      fail(fmt::format("truncated file: {} needs {} bytes at offset {}, but the file size is {}", what, n, pos_,
                       f_.size()));
  }
  template <class T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(std::string_view what) {
    uint64_t len = read<uint64_t>(what);
    if (len > left())
      fail(fmt::format("{} length {} at offset {} runs past the end of the file (size {})", what, len, pos_ - 8,
                       f_.size()));
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), size_t(len));
    pos_ += len;
    return s;
  }
  // Rejects `count` items of at least `min_bytes` each when they cannot fit in the file.
  void check_count(uint64_t count, uint64_t min_bytes, std::string_view what) const {
    if (count > left() / min_bytes)
      fail(fmt::format("{} {} cannot fit in the {} bytes left in the file", what, count, left()));
  }

 private:
  const MappedFile& f_;
  uint64_t pos_ = 0;
};

GgufType read_type(Cursor& c, std::string_view what) {
  uint32_t t = c.read<uint32_t>(what);
  if (t > uint32_t(GgufType::FLOAT64)) c.fail(fmt::format("unknown value type {}", t));
  return GgufType(t);
}

uint64_t read_int_bits(Cursor& c, GgufType t) {
  switch (t) {
    case GgufType::UINT8: return c.read<uint8_t>("value");
    case GgufType::INT8: return uint64_t(int64_t(c.read<int8_t>("value")));
    case GgufType::UINT16: return c.read<uint16_t>("value");
    case GgufType::INT16: return uint64_t(int64_t(c.read<int16_t>("value")));
    case GgufType::UINT32: return c.read<uint32_t>("value");
    case GgufType::INT32: return uint64_t(int64_t(c.read<int32_t>("value")));
    case GgufType::UINT64: return c.read<uint64_t>("value");
    case GgufType::INT64: return uint64_t(c.read<int64_t>("value"));
    case GgufType::BOOL: {
      uint8_t b = c.read<uint8_t>("value");
      if (b > 1) c.fail(fmt::format("bool value {} is neither 0 nor 1", b));
      return b;
    }
    default: return 0;
  }
}

void read_array(Cursor& c, GgufArray& a, int depth) {
  if (depth > kMaxArrayDepth) c.fail(fmt::format("arrays nested deeper than {}", kMaxArrayDepth));
  a.elem_type = read_type(c, "array element type");
  uint64_t n = c.read<uint64_t>("array length");
  c.check_count(n, scalar_size(a.elem_type), "array length");
  switch (a.elem_type) {
    case GgufType::FLOAT32:
      a.numbers.reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.numbers.push_back(c.read<float>("value"));
      break;
    case GgufType::FLOAT64:
      a.numbers.reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.numbers.push_back(c.read<double>("value"));
      break;
    case GgufType::STRING:
      a.strings.reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.strings.push_back(c.read_string("string"));
      break;
    case GgufType::ARRAY:
      a.arrays.resize(n);
      for (uint64_t i = 0; i < n; ++i) read_array(c, a.arrays[i], depth + 1);
      break;
    default:
      a.ints.reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.ints.push_back(read_int_bits(c, a.elem_type));
  }
}

GgufValue read_value(Cursor& c, GgufType t) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::FLOAT32: v.number = c.read<float>("value"); break;
    case GgufType::FLOAT64: v.number = c.read<double>("value"); break;
    case GgufType::STRING: v.str = c.read_string("string"); break;
    case GgufType::ARRAY: {
      auto a = std::make_shared<GgufArray>();
      read_array(c, *a, 1);
      v.array = std::move(a);
      break;
    }
    default: v.bits = read_int_bits(c, t);
  }
  return v;
}

struct GgmlName {
  uint32_t id;
  const char* name;
};
constexpr GgmlName kGgmlNames[] = {
    {0, "F32"},      {1, "F16"},      {2, "Q4_0"},    {3, "Q4_1"},     {6, "Q5_0"},     {7, "Q5_1"},
    {8, "Q8_0"},     {9, "Q8_1"},     {10, "Q2_K"},   {11, "Q3_K"},    {12, "Q4_K"},    {13, "Q5_K"},
    {14, "Q6_K"},    {15, "Q8_K"},    {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"},
    {20, "IQ4_NL"},  {21, "IQ3_S"},   {22, "IQ2_S"},  {23, "IQ4_XS"},  {24, "I8"},      {25, "I16"},
    {26, "I32"},     {27, "I64"},     {28, "F64"},    {29, "IQ1_M"},   {30, "BF16"},    {34, "TQ1_0"},
    {35, "TQ2_0"},   {39, "MXFP4"},
};

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* const names[] = {"uint8", "int8",  "uint16", "int16", "uint32", "int32",  "float32",
                                      "bool",  "string", "array", "uint64", "int64", "float64"};
  auto i = uint32_t(t);
  return i < std::size(names) ? names[i] : "unknown";
}

bool gguf_type_is_integer(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
      return true;
    default:
      return false;
  }
}

std::string ggml_type_name(uint32_t id) {
  for (auto& n : kGgmlNames)
    if (n.id == id) return n.name;
  return "unknown";
}

namespace {
struct GgmlDType {
  GgmlType id;
  DType dtype;
};
constexpr GgmlDType kGgmlDTypes[] = {
    {GGML_F32, DType::F32},   {GGML_F16, DType::F16},       {GGML_BF16, DType::BF16},    {GGML_Q4_0, DType::Q4_0},
    {GGML_Q4_1, DType::Q4_1}, {GGML_Q5_0, DType::Q5_0},     {GGML_Q5_1, DType::Q5_1},    {GGML_Q8_0, DType::Q8_0},
    {GGML_Q2_K, DType::Q2_K}, {GGML_Q3_K, DType::Q3_K},     {GGML_Q4_K, DType::Q4_K},    {GGML_Q5_K, DType::Q5_K},
    {GGML_Q6_K, DType::Q6_K}, {GGML_IQ4_NL, DType::IQ4_NL}, {GGML_IQ4_XS, DType::IQ4_XS},
};
}  // namespace

std::optional<DType> ggml_to_dtype(uint32_t id) {
  for (const GgmlDType& e : kGgmlDTypes)
    if (e.id == id) return e.dtype;
  return std::nullopt;
}

uint32_t dtype_to_ggml(DType t) {
  for (const GgmlDType& e : kGgmlDTypes)
    if (e.dtype == t) return e.id;
  throw Error(fmt::format("GGUF cannot hold tensors of type {}", dtype_name(t)));
}

size_t GgufArray::size() const {
  switch (elem_type) {
    case GgufType::FLOAT32: case GgufType::FLOAT64: return numbers.size();
    case GgufType::STRING: return strings.size();
    case GgufType::ARRAY: return arrays.size();
    default: return ints.size();
  }
}

namespace {
std::string int_to_string(GgufType t, uint64_t bits) {
  if (t == GgufType::BOOL) return bits ? "true" : "false";
  return is_signed(t) ? std::to_string(int64_t(bits)) : std::to_string(bits);
}

std::string array_to_string(const GgufArray& a, size_t max_items) {
  std::string out = "[";
  size_t n = a.size();
  for (size_t i = 0; i < n && i < max_items; ++i) {
    if (i) out += ", ";
    switch (a.elem_type) {
      case GgufType::FLOAT32: case GgufType::FLOAT64: out += fmt::format("{}", a.numbers[i]); break;
      case GgufType::STRING: out += fmt::format("\"{}\"", printable(a.strings[i])); break;
      case GgufType::ARRAY: out += array_to_string(a.arrays[i], max_items); break;
      default: out += int_to_string(a.elem_type, a.ints[i]);
    }
  }
  if (n > max_items) out += fmt::format(", ... ({} items)", n);
  return out + "]";
}
}  // namespace

std::string gguf_value_to_string(const GgufValue& v, size_t max_items) {
  switch (v.type) {
    case GgufType::FLOAT32: case GgufType::FLOAT64: return fmt::format("{}", v.number);
    case GgufType::STRING: return printable(v.str);
    case GgufType::ARRAY: return array_to_string(*v.array, max_items);
    default: return int_to_string(v.type, v.bits);
  }
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::shape() const { return {ne.rbegin(), ne.rend()}; }

GgufFile GgufFile::open(const std::string& path) { return parse(MappedFile::open(path)); }

GgufFile GgufFile::parse(std::shared_ptr<const MappedFile> file) {
  GgufFile g;
  g.file_ = std::move(file);
  const MappedFile& f = *g.file_;
  Cursor c(f);

  c.need(4, "magic");
  if (std::memcmp(f.data(), "GGUF", 4) != 0) {
    std::string got(reinterpret_cast<const char*>(f.data()), 4);
    c.fail(fmt::format("bad magic '{}' (expected 'GGUF'; not a GGUF file)", printable(got)));
  }
  c.read<uint32_t>("magic");
  g.version_ = c.read<uint32_t>("version");
  if (g.version_ != 2 && g.version_ != 3) {
    uint32_t swapped = __builtin_bswap32(g.version_);
    c.fail(fmt::format("unsupported GGUF version {} (expected 2 or 3{})", g.version_,
                       swapped == 2 || swapped == 3 ? "; big-endian files are not supported" : ""));
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  c.check_count(n_kv, kMinKvBytes, "metadata count");

  g.kv_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    c.ctx = fmt::format("metadata entry {}", i);
    std::string key = c.read_string("key");
    c.ctx = fmt::format("metadata key '{}'", printable(key));
    GgufType t = read_type(c, "value type");
    GgufValue v = read_value(c, t);
    if (!g.kv_index_.emplace(key, g.kv_.size()).second) c.fail("duplicate key");
    g.kv_.emplace_back(std::move(key), std::move(v));
  }
  c.ctx.clear();

  if (const GgufValue* a = g.find("general.alignment")) {
    c.ctx = "metadata key 'general.alignment'";
    if (!gguf_type_is_integer(a->type)) c.fail(fmt::format("expected uint32, found {}", gguf_type_name(a->type)));
    uint64_t al = a->bits;
    if (al == 0 || al > kMaxAlignment || (al & (al - 1)) != 0)
      c.fail(fmt::format("alignment {} is not a power of two between 1 and {}", gguf_value_to_string(*a),
                         kMaxAlignment));
    g.alignment_ = uint32_t(al);
    c.ctx.clear();
  }

  c.check_count(n_tensors, kMinTensorInfoBytes, "tensor count");
  g.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    c.ctx = fmt::format("tensor info {}", i);
    GgufTensorInfo ti;
    ti.name = c.read_string("name");
    c.ctx = fmt::format("tensor '{}'", printable(ti.name));
    uint32_t n_dims = c.read<uint32_t>("dim count");
    if (n_dims < 1 || n_dims > kMaxDims) c.fail(fmt::format("{} dims (expected 1 to {})", n_dims, kMaxDims));
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = c.read<uint64_t>("dim");
      if (ne == 0 || ne > uint64_t(std::numeric_limits<int64_t>::max()))
        c.fail(fmt::format("dim {} is {} (must be positive)", d, int64_t(ne)));
      if (__builtin_mul_overflow(numel, int64_t(ne), &numel)) c.fail("element count overflows");
      ti.ne.push_back(int64_t(ne));
    }
    ti.ggml_type = c.read<uint32_t>("type");
    auto dt = ggml_to_dtype(ti.ggml_type);
    if (!dt) c.fail(fmt::format("unsupported tensor type {} (ggml type id {})", ggml_type_name(ti.ggml_type), ti.ggml_type));
    ti.dtype = *dt;
    int64_t block = dtype_block_elems(ti.dtype);
    if (ti.ne[0] % block != 0)
      c.fail(fmt::format("ne[0] = {} is not a multiple of the {} block size {}", ti.ne[0], dtype_name(ti.dtype),
                         block));
    uint64_t blocks = uint64_t(numel / block);
    if (__builtin_mul_overflow(blocks, uint64_t(dtype_block_bytes(ti.dtype)), &ti.nbytes))
      c.fail("byte size overflows");
    ti.offset = c.read<uint64_t>("data offset");
    if (ti.offset % g.alignment_ != 0)
      c.fail(fmt::format("data offset {} is not a multiple of the alignment {}", ti.offset, g.alignment_));
    if (!g.tensor_index_.emplace(ti.name, g.tensors_.size()).second) c.fail("duplicate tensor name");
    g.tensors_.push_back(std::move(ti));
  }
  c.ctx.clear();

  // The data section starts at the next multiple of the alignment after the infos.
  uint64_t pos = c.pos();
  g.data_offset_ = (pos + g.alignment_ - 1) / g.alignment_ * g.alignment_;
  for (auto& ti : g.tensors_) {
    uint64_t begin = 0, end = 0;
    bool overflow = __builtin_add_overflow(g.data_offset_, ti.offset, &begin) ||
                    __builtin_add_overflow(begin, ti.nbytes, &end);
    if (overflow)
      throw Error(fmt::format("{}: tensor '{}': data offset {} + size {} overflows", f.path(), printable(ti.name),
                              ti.offset, ti.nbytes));
    if (!f.contains(begin, ti.nbytes))
      throw Error(fmt::format("{}: tensor '{}': data [{}, {}) lies outside the file (size {})", f.path(),
                              printable(ti.name), begin, end, f.size()));
    ti.data = f.data() + begin;
  }
  std::vector<DataRegion> regions;
  regions.reserve(g.tensors_.size());
  for (const auto& ti : g.tensors_) regions.push_back({ti.name, ti.offset, ti.nbytes});
  check_disjoint(std::move(regions), f.path());
  return g;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue& GgufFile::require(std::string_view key) const {
  if (const GgufValue* v = find(key)) return *v;
  throw Error(fmt::format("{}: metadata key '{}' is missing", path(), key));
}

void GgufFile::type_error(std::string_view key, const char* expected, const GgufValue& v) const {
  std::string found = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) found = fmt::format("array of {}", gguf_type_name(v.array->elem_type));
  throw Error(fmt::format("{}: metadata key '{}': expected {}, found {}", path(), key, expected, found));
}

int64_t GgufFile::get_int(std::string_view key, const GgufValue& v, int64_t lo, int64_t hi,
                          const char* expected) const {
  if (!gguf_type_is_integer(v.type)) type_error(key, expected, v);
  bool neg = is_signed(v.type) && int64_t(v.bits) < 0;
  bool fits = neg ? int64_t(v.bits) >= lo : v.bits <= uint64_t(hi);
  if (!fits)
    throw Error(fmt::format("{}: metadata key '{}': value {} is out of range for {}", path(), key,
                            gguf_value_to_string(v), expected));
  return int64_t(v.bits);
}

uint32_t GgufFile::get_u32(std::string_view key) const {
  return uint32_t(get_int(key, require(key), 0, std::numeric_limits<uint32_t>::max(), "uint32"));
}

int32_t GgufFile::get_i32(std::string_view key) const {
  return int32_t(get_int(key, require(key), std::numeric_limits<int32_t>::min(),
                         std::numeric_limits<int32_t>::max(), "int32"));
}

uint64_t GgufFile::get_u64(std::string_view key) const {
  const GgufValue& v = require(key);
  if (!gguf_type_is_integer(v.type)) type_error(key, "uint64", v);
  if (is_signed(v.type) && int64_t(v.bits) < 0)
    throw Error(fmt::format("{}: metadata key '{}': value {} is out of range for uint64", path(), key,
                            int64_t(v.bits)));
  return v.bits;
}

float GgufFile::get_f32(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::FLOAT32 && v.type != GgufType::FLOAT64) type_error(key, "float32", v);
  return float(v.number);
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::BOOL) type_error(key, "bool", v);
  return v.bits != 0;
}

const std::string& GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::STRING) type_error(key, "string", v);
  return v.str;
}

const GgufArray& GgufFile::get_array(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::ARRAY) type_error(key, "array", v);
  return *v.array;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::ARRAY || v.array->elem_type != GgufType::STRING) type_error(key, "array of string", v);
  return v.array->strings;
}

std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::ARRAY || !gguf_type_is_integer(v.array->elem_type)) type_error(key, "array of int32", v);
  const GgufArray& a = *v.array;
  std::vector<int32_t> out;
  out.reserve(a.ints.size());
  for (size_t i = 0; i < a.ints.size(); ++i) {
    uint64_t b = a.ints[i];
    int64_t x = int64_t(b);
    bool fits = is_signed(a.elem_type) ? x >= std::numeric_limits<int32_t>::min() && x <= std::numeric_limits<int32_t>::max()
                                       : b <= uint64_t(std::numeric_limits<int32_t>::max());
    if (!fits)
      throw Error(fmt::format("{}: metadata key '{}': item {} = {} is out of range for int32", path(), key, i,
                              int_to_string(a.elem_type, b)));
    out.push_back(int32_t(x));
  }
  return out;
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufType::ARRAY ||
      (v.array->elem_type != GgufType::FLOAT32 && v.array->elem_type != GgufType::FLOAT64))
    type_error(key, "array of float32", v);
  return {v.array->numbers.begin(), v.array->numbers.end()};
}

std::optional<uint32_t> GgufFile::opt_u32(std::string_view key) const {
  return has(key) ? std::optional(get_u32(key)) : std::nullopt;
}
std::optional<int32_t> GgufFile::opt_i32(std::string_view key) const {
  return has(key) ? std::optional(get_i32(key)) : std::nullopt;
}
std::optional<float> GgufFile::opt_f32(std::string_view key) const {
  return has(key) ? std::optional(get_f32(key)) : std::nullopt;
}
std::optional<bool> GgufFile::opt_bool(std::string_view key) const {
  return has(key) ? std::optional(get_bool(key)) : std::nullopt;
}
std::optional<std::string> GgufFile::opt_string(std::string_view key) const {
  return has(key) ? std::optional(get_string(key)) : std::nullopt;
}

}  // namespace upg::io
