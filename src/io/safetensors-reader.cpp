#include "io/safetensors-reader.h"

#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "upg/core/json.h"
#include "io/data-regions.h"
#include "io/hf-json.h"
#include "upg/core/error.h"

namespace upg::io {

namespace {

using Json = nlohmann::ordered_json;  // keeps tensors and metadata in file order

constexpr DType kPlain[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                            DType::I8,  DType::U8,  DType::U16, DType::U32,  DType::U64, DType::BOOL};

// A JSON value as a non-negative int64, or an error naming `what`.
int64_t non_negative(const Json& v, const std::string& where, std::string_view what) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max()))
      throw Error(fmt::format("{}: {} {} is too large", where, what, u));
    return int64_t(u);
  }
  if (v.is_number_integer()) throw Error(fmt::format("{}: {} {} is negative", where, what, v.get<int64_t>()));
  throw Error(fmt::format("{}: {} must be a non-negative integer, got {}", where, what, json_brief(v)));
}

TensorView parse_tensor(const std::string& path, const std::string& name, const Json& e, const std::byte* data,
                        uint64_t data_size) {
  const std::string where = fmt::format("{}: tensor '{}'", path, name);
  if (!e.is_object()) throw Error(fmt::format("{}: entry must be an object, got {}", where, e.type_name()));

  auto dt = e.find("dtype");
  if (dt == e.end()) throw Error(fmt::format("{}: missing 'dtype'", where));
  if (!dt->is_string()) throw Error(fmt::format("{}: 'dtype' must be a string, got {}", where, json_brief(*dt)));
  auto dtype = safetensors_dtype(dt->get<std::string>());
  if (!dtype) throw Error(fmt::format("{}: unsupported dtype '{}'", where, dt->get<std::string>()));

  auto sh = e.find("shape");
  if (sh == e.end()) throw Error(fmt::format("{}: missing 'shape'", where));
  if (!sh->is_array()) throw Error(fmt::format("{}: 'shape' must be an array, got {}", where, json_brief(*sh)));
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (const auto& d : *sh) {
    shape.push_back(non_negative(d, where, "shape dimension"));
    if (__builtin_mul_overflow(numel, shape.back(), &numel))
      throw Error(fmt::format("{}: shape {} overflows the element count", where, json_brief(*sh)));
  }
  uint64_t expect = 0;
  if (__builtin_mul_overflow(uint64_t(numel), uint64_t(dtype_block_bytes(*dtype)), &expect))
    throw Error(fmt::format("{}: shape {} overflows the byte size", where, json_brief(*sh)));

  auto off = e.find("data_offsets");
  if (off == e.end()) throw Error(fmt::format("{}: missing 'data_offsets'", where));
  if (!off->is_array() || off->size() != 2)
    throw Error(fmt::format("{}: 'data_offsets' must be [begin, end], got {}", where, json_brief(*off)));
  uint64_t begin = uint64_t(non_negative((*off)[0], where, "data_offsets begin"));
  uint64_t end = uint64_t(non_negative((*off)[1], where, "data_offsets end"));
  if (begin > end) throw Error(fmt::format("{}: data_offsets [{}, {}] are reversed", where, begin, end));
  if (end > data_size)
    throw Error(fmt::format("{}: data_offsets [{}, {}] past the end of the data ({} bytes)", where, begin, end,
                            data_size));
  if (end - begin != expect)
    throw Error(fmt::format("{}: data_offsets [{}, {}] hold {} bytes but {} shape {} needs {}", where, begin, end,
                            end - begin, dtype_name(*dtype), json_brief(*sh), expect));

  TensorView v;
  v.name = name;
  v.dtype = *dtype;
  v.shape = std::move(shape);
  v.data = data + begin;
  v.nbytes = size_t(expect);
  return v;
}

}  // namespace

std::optional<DType> safetensors_dtype(std::string_view name) {
  for (DType t : kPlain)
    if (name == dtype_name(t)) return t;
  return std::nullopt;
}

const char* safetensors_dtype_name(DType t) {
  if (dtype_is_quantized(t)) throw Error(fmt::format("dtype {} cannot be stored in safetensors", dtype_name(t)));
  return dtype_name(t);
}

SafetensorsFile read_safetensors(const std::string& path) { return read_safetensors(MappedFile::open(path)); }

SafetensorsFile read_safetensors(std::shared_ptr<MappedFile> file) {
  SafetensorsFile out;
  out.file = std::move(file);
  const std::string& path = out.file->path();
  const MappedFile& f = *out.file;
  // GGUF's magic read as a header length is about 14 GB: say what the file is instead.
  if (f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0)
    throw Error(fmt::format("{}: this is a GGUF file, not a UPG or safetensors file", path));
  if (f.size() < 8)
    throw Error(fmt::format("{}: file is {} bytes, too short for the 8-byte safetensors header length", path,
                            f.size()));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | uint64_t(std::to_integer<uint8_t>(f.data()[i]));
  if (n > kSafetensorsMaxHeader)
    throw Error(fmt::format("{}: header length {} exceeds the {} byte limit", path, n, kSafetensorsMaxHeader));
  if (n > f.size() - 8)
    throw Error(fmt::format("{}: header length {} runs past the end of the file ({} bytes)", path, n, f.size()));

  const char* text = reinterpret_cast<const char*>(f.data() + 8);
  const Json header = parse_json<Json>(std::string_view(text, n), fmt::format("{}: header", path));
  if (!header.is_object()) throw Error(fmt::format("{}: header must be a JSON object, got {}", path, header.type_name()));

  out.data_start = 8 + n;
  const std::byte* data = f.data() + out.data_start;
  const uint64_t data_size = f.size() - out.data_start;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw Error(fmt::format("{}: '__metadata__' must be an object, got {}", path, value.type_name()));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw Error(fmt::format("{}: '__metadata__.{}' must be a string, got {}", path, mk, json_brief(mv)));
        out.metadata.emplace_back(mk, mv.get<std::string>());
      }
      continue;
    }
    out.tensors.push_back(parse_tensor(path, key, value, data, data_size));
  }
  std::vector<DataRegion> regions;
  regions.reserve(out.tensors.size());
  for (const TensorView& t : out.tensors) regions.push_back({t.name, uint64_t(t.data - data), t.nbytes});
  check_disjoint(std::move(regions), path);
  return out;
}

}  // namespace upg::io
